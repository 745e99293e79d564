//! What only the SQL backends do, on SQLite, MariaDB and PostgreSQL (real
//! servers, one of each for this file): the table is Symfony
//! `PdoSessionHandler`'s, created if missing, and a missing table with
//! `create_table=off` is an error naming it (in `nene check`, and 503 at
//! first use); expired rows read as missing and gc deletes them; the lock
//! holds across a request; listing pages through live sessions; no error or
//! log line shows the password; and a PHP script with a Symfony-style PDO
//! session handler reads and changes a session nene wrote through nginx,
//! in PHP's format, in the shared table, and a lock PHP takes in Symfony's
//! `LOCK_ADVISORY` mode makes nene wait. A relative `sqlite://` path is a
//! file in nene's working directory.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nene::session::{
    BackendShorthands, LIST_PAGE_SIZE, LiveSession, SessionAdmin, SessionDsn, SessionError,
    SessionIdFormat, SqlSessionHandler, Stored,
};
use nene_test_support::browser::Browser;
use nene_test_support::mariadb::MariaDb;
use nene_test_support::php_cli::run_php;
use nene_test_support::postgres::Postgres;
use nene_test_support::{Nene, Nginx, nene_behind_nginx, run_nene};
use sqlx::Row;

/// One database under test: its DSN (password included), how PHP's PDO
/// reaches it, and the column types its DDL must give.
struct Db {
    /// nene's DSN, without options.
    dsn: String,
    /// The password in `dsn`, which must never show.
    password: Option<&'static str>,
    /// `new PDO(…)`'s arguments, as PHP source.
    pdo: String,
    /// Symfony's merge statement for this driver (PdoSessionHandler::getMergeStatement).
    php_merge: &'static str,
    /// The columns' names and types as the database reports them.
    columns: Vec<(&'static str, &'static str)>,
    /// The query listing (name, type) of a table's columns, `{t}` for the table.
    columns_sql: &'static str,
    /// The query counting the indexes on `{t}`'s `sess_lifetime`.
    lifetime_index_sql: &'static str,
}

/// A handler on `dsn` with `options`, statements bounded to 1 s unless they say otherwise.
fn handler(dsn: &str, options: &str, ttl: Duration) -> Arc<dyn SessionAdmin> {
    let mut all: Vec<&str> = options.split('&').filter(|o| !o.is_empty()).collect();
    for default in ["timeout=1s", "acquire_timeout=1s"] {
        let key = default.split('=').next().unwrap();
        if !all.iter().any(|o| o.split('=').next() == Some(key)) {
            all.push(default);
        }
    }
    let dsn = SessionDsn::parse(&format!("{dsn}?{}", all.join("&"))).expect("a valid DSN");
    Arc::new(SqlSessionHandler::new(&dsn, ttl).unwrap())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The DSN as sqlx's own URL parser takes it.
fn sqlx_url(dsn: &str) -> String {
    dsn.replacen("mariadb://", "mysql://", 1)
}

/// Each row's columns as text (numbers printed).
fn as_text<R: Row>(rows: Vec<R>) -> Vec<Vec<String>>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|at| {
                    row.try_get::<String, _>(at)
                        .or_else(|_| row.try_get::<i64, _>(at).map(|n| n.to_string()))
                        .or_else(|_| row.try_get::<i32, _>(at).map(|n| n.to_string()))
                        .or_else(|_| {
                            row.try_get::<Vec<u8>, _>(at)
                                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        })
                        .unwrap_or_else(|error| panic!("column {at}: {error}"))
                })
                .collect()
        })
        .collect()
}

/// Runs `sql` on the database behind nene's back; returns every row's
/// columns as text.
async fn sql(dsn: &str, sql: &str) -> Vec<Vec<String>> {
    use sqlx::Connection;
    let url = sqlx_url(dsn);
    let failed = |error: sqlx::Error| -> Vec<Vec<String>> { panic!("{sql}: {error}") };
    if url.starts_with("sqlite") {
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(sql)
            .fetch_all(&mut db)
            .await
            .map(as_text)
            .unwrap_or_else(failed)
    } else if url.starts_with("mysql") {
        let mut db = sqlx::MySqlConnection::connect(&url).await.unwrap();
        sqlx::query(sql)
            .fetch_all(&mut db)
            .await
            .map(as_text)
            .unwrap_or_else(failed)
    } else {
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(sql)
            .fetch_all(&mut db)
            .await
            .map(as_text)
            .unwrap_or_else(failed)
    }
}

async fn the_table_is_symfonys_and_created_when_missing(db: &Db) {
    let sessions = handler(&db.dsn, "table=nene_made", Duration::from_secs(60));
    sessions
        .ping()
        .await
        .expect("the table is created on first use");
    let columns: Vec<(String, String)> = sql(&db.dsn, &db.columns_sql.replace("{t}", "nene_made"))
        .await
        .into_iter()
        .map(|row| (row[0].clone(), row[1].to_lowercase()))
        .collect();
    let expected: Vec<(String, String)> = db
        .columns
        .iter()
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect();
    assert_eq!(columns, expected);
    // gc finds expired rows by an index, not a scan of every session.
    let indexes = sql(&db.dsn, &db.lifetime_index_sql.replace("{t}", "nene_made")).await;
    assert_eq!(indexes, vec![vec!["1".to_string()]]);
}

async fn a_missing_table_with_create_table_off_is_an_error_naming_it(db: &Db) {
    let dsn = format!("{}?table=not_there&create_table=off", db.dsn);
    let sessions = handler(
        &db.dsn,
        "table=not_there&create_table=off",
        Duration::from_secs(60),
    );
    let id = SessionIdFormat::new(32, 5).unwrap().generate();
    for error in [
        sessions.ping().await.unwrap_err(),
        sessions.read(&id).await.unwrap_err(),
    ] {
        let message = error.to_string();
        assert!(message.contains("`not_there`"), "{message}");
        assert!(message.contains("create_table=off"), "{message}");
    }
    let check = run_nene(&["check"], &[("NENE_SESSION_DSN", &dsn)]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("`not_there`"), "{stderr}");
    // And nothing was created behind the operator's back.
    sessions.ping().await.unwrap_err();
    // A request that needs the session gets a 503, and the log names the table.
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION_DSN", &dsn)]);
    let page = Browser::new(&nginx.url("")).get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", page.body);
    let log = nene.log_text();
    assert!(log.contains("`not_there`"), "{log}");
}

async fn expired_rows_read_as_missing_and_gc_deletes_only_them(db: &Db) {
    let sessions = handler(&db.dsn, "table=expiry", Duration::from_secs(60));
    let ids = SessionIdFormat::new(32, 5).unwrap();
    let (old, live) = (ids.generate(), ids.generate());
    sessions
        .write(&old, Bytes::from_static(b"old"))
        .await
        .unwrap();
    sessions
        .write(&live, Bytes::from_static(b"live"))
        .await
        .unwrap();
    let past = unix_now() - 10;
    sql(
        &db.dsn,
        &format!(
            "UPDATE expiry SET sess_lifetime = {past} WHERE sess_id = '{}'",
            old.as_str()
        ),
    )
    .await;
    assert_eq!(sessions.read(&old).await.unwrap(), Stored::Missing);
    assert!(!sessions.exists(&old).await.unwrap());
    sessions.touch(&old).await.unwrap();
    assert_eq!(
        sessions.read(&old).await.unwrap(),
        Stored::Missing,
        "touch does not revive"
    );
    let page = sessions.list_sessions(None).await.unwrap();
    assert_eq!(
        page.sessions
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec![live.as_str()]
    );
    assert_eq!(sessions.gc().await.unwrap(), 1);
    let left = sql(&db.dsn, "SELECT sess_id FROM expiry").await;
    assert_eq!(left, vec![vec![live.as_str().to_string()]]);
    // The row's times are Symfony's: expiry = last write + lifetime.
    let times = sql(
        &db.dsn,
        "SELECT sess_id FROM expiry WHERE sess_lifetime = sess_time + 60",
    )
    .await;
    assert_eq!(times, left);
}

async fn the_lock_holds_until_the_save_and_a_waiter_gives_up_after_lock_wait(db: &Db) {
    let holder = handler(&db.dsn, "table=locks&lock_wait=5s", Duration::from_secs(60));
    let waiter = handler(
        &db.dsn,
        "table=locks&lock_wait=400ms",
        Duration::from_secs(60),
    );
    let id = SessionIdFormat::new(32, 5).unwrap().generate();
    holder
        .write(&id, Bytes::from_static(b"before"))
        .await
        .unwrap();
    let (lock, stored) = holder.locked_read(&id).await.unwrap();
    assert_eq!(stored, Stored::Data(Bytes::from_static(b"before")));
    let started = Instant::now();
    let refused = waiter.locked_read(&id).await;
    let waited = started.elapsed();
    assert!(
        matches!(refused, Err(SessionError::LockTimeout { .. })),
        "{:?}",
        refused.map(|(_, stored)| stored)
    );
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // Unlocked reads are not held up by the lock.
    assert_eq!(
        waiter.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"before"))
    );
    holder
        .save_and_unlock(&id, Some(Bytes::from_static(b"after")), lock)
        .await
        .unwrap();
    let (lock, stored) = waiter.locked_read(&id).await.unwrap();
    assert_eq!(stored, Stored::Data(Bytes::from_static(b"after")));
    lock.release().await.unwrap();
}

async fn a_full_pool_is_a_quick_error_and_a_dropped_lock_gives_its_connection_back(db: &Db) {
    let sessions = handler(
        &db.dsn,
        "table=pool&pool_size=1&acquire_timeout=300ms&timeout=300ms",
        Duration::from_secs(60),
    );
    let ids = SessionIdFormat::new(32, 5).unwrap();
    let (locked, other) = (ids.generate(), ids.generate());
    let (lock, _) = sessions.locked_read(&locked).await.unwrap();
    // The lock holds the only connection: another session's read waits
    // for the pool, then fails instead of hanging.
    let started = Instant::now();
    let error = sessions.read(&other).await.unwrap_err();
    assert!(matches!(error, SessionError::Timeout { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A request cancelled while holding the lock: its connection comes
    // back to the pool, unlocked (another lock on the session is taken).
    drop(lock);
    let mut again = None;
    for _ in 0..20 {
        if let Ok((lock, _)) = sessions.locked_read(&locked).await {
            again = Some(lock);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lock = again.expect("the dropped lock's connection came back unlocked");
    sessions
        .save_and_unlock(&locked, Some(Bytes::from_static(b"kept")), lock)
        .await
        .unwrap();
    assert_eq!(
        sessions.read(&locked).await.unwrap(),
        Stored::Data(Bytes::from_static(b"kept"))
    );
}

async fn listing_pages_through_live_sessions_with_their_lifetimes(db: &Db) {
    let sessions = handler(&db.dsn, "table=listing", Duration::from_secs(60));
    let ids = SessionIdFormat::new(32, 5).unwrap();
    let mut written: Vec<String> = Vec::new();
    let short = ids.generate();
    sessions
        .store_copy(
            &LiveSession {
                id: short.clone(),
                remaining: Duration::from_secs(30),
            },
            Bytes::from_static(b"s"),
        )
        .await
        .unwrap();
    written.push(short.as_str().to_string());
    // One page and a bit.
    let now = unix_now();
    let values: Vec<String> = (0..LIST_PAGE_SIZE)
        .map(|_| {
            let id = ids.generate();
            written.push(id.as_str().to_string());
            format!("('{}', 'x', {}, {now})", id.as_str(), now + 600)
        })
        .collect();
    let data = if db.dsn.starts_with("postgres") {
        "'x'::bytea"
    } else {
        "'x'"
    };
    let insert = format!(
        "INSERT INTO listing (sess_id, sess_data, sess_lifetime, sess_time) VALUES {}",
        values.join(", ").replace("'x'", data)
    );
    sql(&db.dsn, &insert).await;
    written.sort();
    let first = sessions.list_sessions(None).await.unwrap();
    assert_eq!(first.sessions.len(), LIST_PAGE_SIZE);
    let cursor = first.next.clone().expect("a second page");
    let second = sessions.list_sessions(Some(cursor)).await.unwrap();
    assert_eq!(second.sessions.len(), 1);
    assert_eq!(second.next, None);
    let listed: Vec<String> = first
        .sessions
        .iter()
        .chain(&second.sessions)
        .map(|s| s.id.as_str().to_string())
        .collect();
    assert_eq!(listed, written);
    let remaining = first
        .sessions
        .iter()
        .chain(&second.sessions)
        .find(|s| s.id == short)
        .unwrap()
        .remaining;
    assert!(
        remaining <= Duration::from_secs(30) && remaining >= Duration::from_secs(28),
        "{remaining:?}"
    );
}

async fn the_password_shows_in_no_error_and_no_log(db: &Db) {
    let Some(password) = db.password else {
        return;
    };
    // Wrong database, wrong password: the server's and the client's
    // messages go through nene's errors.
    let wrong_db = db.dsn.rsplit_once('/').unwrap().0.to_string() + "/no_such_db";
    let wrong_password = db.dsn.replace(password, &format!("{password}-wrong"));
    for dsn in [wrong_db.as_str(), wrong_password.as_str()] {
        let sessions = handler(dsn, "", Duration::from_secs(60));
        let error = sessions.ping().await.unwrap_err();
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(password), "{shown}");
        }
    }
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION_DSN", &wrong_password)]);
    let mut browser = nginx.browser();
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(!page.body.contains(password));
    let log = nene.log_text();
    assert!(log.contains("session"), "{log}");
    assert!(!log.contains(password), "{log}");
}

/// A Symfony-style PDO session handler (PdoSessionHandler's queries,
/// without locking) that reads the session, prints it as JSON, adds one to
/// its counter and writes it back.
fn php_increments(db: &Db, table: &str, id: &str) -> String {
    let merge = db.php_merge.replace("{t}", table);
    let script = format!(
        r#"<?php
class SymfonyStyle implements SessionHandlerInterface {{
    public function __construct(private PDO $pdo) {{}}
    public function open(string $path, string $name): bool {{ return true; }}
    public function close(): bool {{ return true; }}
    public function read(string $id): string|false {{
        $s = $this->pdo->prepare("SELECT sess_data, sess_lifetime FROM {table} WHERE sess_id = :id");
        $s->bindParam(':id', $id, PDO::PARAM_STR);
        $s->execute();
        $row = $s->fetch(PDO::FETCH_NUM);
        if (!$row || (int) $row[1] < time()) {{ return ''; }}
        return is_resource($row[0]) ? stream_get_contents($row[0]) : $row[0];
    }}
    public function write(string $id, string $data): bool {{
        $s = $this->pdo->prepare("{merge}");
        $s->bindParam(':id', $id, PDO::PARAM_STR);
        $s->bindParam(':data', $data, PDO::PARAM_LOB);
        $s->bindValue(':expiry', time() + 600, PDO::PARAM_INT);
        $s->bindValue(':time', time(), PDO::PARAM_INT);
        return $s->execute();
    }}
    public function destroy(string $id): bool {{ return true; }}
    public function gc(int $max): int|false {{ return 0; }}
}}
ini_set('session.use_cookies', '0');
ini_set('session.cache_limiter', '');
ini_set('session.serialize_handler', 'php');
$pdo = new PDO({pdo});
$pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
session_set_save_handler(new SymfonyStyle($pdo), true);
session_id('{id}');
session_start();
echo json_encode($_SESSION);
$_SESSION['count']++;
session_write_close();
"#,
        pdo = db.pdo,
    );
    run_php(&script)
}

async fn php_with_a_symfony_style_handler_shares_sessions_nene_wrote(db: &Db) {
    let dsn = format!("{}?table=shared", db.dsn);
    let nene = Nene::start(&[
        ("NENE_SESSION_DSN", &dsn),
        ("NENE_SESSION__SERIALIZE_HANDLER", "php"),
    ]);
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = nginx.browser();
    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}\n{}", page.body, nene.log_text());
        assert_eq!(page.json()["count"], expected);
    }
    let id = browser.session_id().unwrap();
    assert_eq!(php_increments(db, "shared", &id), r#"{"count":3}"#);
    let page = browser.get("/session/counter").await;
    assert_eq!(page.json()["count"], 5, "nene read what PHP wrote");
    assert_eq!(php_increments(db, "shared", &id), r#"{"count":5}"#);
}

/// PHP takes the session's lock as Symfony's `LOCK_ADVISORY` mode does
/// (`doAdvisoryLock`: `GET_LOCK` of the id's first 64 characters, or
/// `pg_advisory_lock` of `convertStringToInt`), holds it for a second
/// and a half, and nene's request for the same session waits.
async fn a_lock_php_takes_in_symfonys_advisory_mode_excludes_nene(db: &Db) {
    let take = if db.dsn.starts_with("postgres") {
        r#"$int1 = (ord($id[7]) << 24) + (ord($id[6]) << 16) + (ord($id[5]) << 8) + ord($id[4]);
$int2 = (ord($id[3]) << 24) + (ord($id[2]) << 16) + (ord($id[1]) << 8) + ord($id[0]);
$s = $pdo->prepare('SELECT pg_advisory_lock(:key)');
$s->bindValue(':key', $int2 + ($int1 << 32), PDO::PARAM_INT);"#
    } else {
        r#"$s = $pdo->prepare('SELECT GET_LOCK(:key, 50)');
$s->bindValue(':key', substr($id, 0, 64), PDO::PARAM_STR);"#
    };
    let id = SessionIdFormat::new(32, 5).unwrap().generate();
    let script = format!(
        "<?php\n$pdo = new PDO({pdo});\n$pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);\n$id = '{id}';\n{take}\n$s->execute();\necho \"locked\\n\";\nflush();\nusleep(1500000);\n",
        pdo = db.pdo,
        id = id.as_str(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lock.php");
    std::fs::write(&path, script).unwrap();
    let mut php = std::process::Command::new(nene_test_support::require_program("php", "php-cli"))
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(php.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n", "PHP did not take the lock");
    let impatient = handler(
        &db.dsn,
        "table=php_locks&lock_wait=300ms",
        Duration::from_secs(60),
    );
    let refused = impatient.locked_read(&id).await;
    assert!(
        matches!(refused, Err(SessionError::LockTimeout { .. })),
        "{:?}",
        refused.map(|(_, stored)| stored)
    );
    let patient = handler(
        &db.dsn,
        "table=php_locks&lock_wait=5s",
        Duration::from_secs(60),
    );
    let started = Instant::now();
    let (lock, _) = patient.locked_read(&id).await.unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    lock.release().await.unwrap();
    assert!(php.wait().unwrap().success());
}

async fn everything_on(db: Db) {
    the_table_is_symfonys_and_created_when_missing(&db).await;
    a_missing_table_with_create_table_off_is_an_error_naming_it(&db).await;
    expired_rows_read_as_missing_and_gc_deletes_only_them(&db).await;
    the_lock_holds_until_the_save_and_a_waiter_gives_up_after_lock_wait(&db).await;
    a_full_pool_is_a_quick_error_and_a_dropped_lock_gives_its_connection_back(&db).await;
    listing_pages_through_live_sessions_with_their_lifetimes(&db).await;
    the_password_shows_in_no_error_and_no_log(&db).await;
    php_with_a_symfony_style_handler_shares_sessions_nene_wrote(&db).await;
    if !db.dsn.starts_with("sqlite") {
        a_lock_php_takes_in_symfonys_advisory_mode_excludes_nene(&db).await;
        tls_when_required_is_never_given_up(&db);
    }
}

/// The test servers offer no TLS. Under `sslmode=require` (PostgreSQL) or
/// `ssl-mode=REQUIRED` (MySQL) nene then does not connect at all, rather
/// than send the password in clear; under the default it connects. A CA
/// file that cannot be read stops start-up naming it.
fn tls_when_required_is_never_given_up(db: &Db) {
    let postgres = db.dsn.starts_with("postgres");
    let (require, ca) = if postgres {
        ("sslmode=require", "sslrootcert")
    } else {
        ("ssl-mode=REQUIRED", "ssl-ca")
    };
    let check = |dsn: &str| {
        let output = run_nene(&["check"], &[("NENE_SESSION_DSN", dsn)]);
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        if let Some(password) = db.password {
            assert!(!said.contains(password), "{said}");
        }
        (output.status.code(), said)
    };
    let (code, said) = check(&format!("{}?{require}", db.dsn));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("unreachable"), "{said}");
    let (code, said) = check(&db.dsn);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = check(&format!("{}?{ca}=/nonexistent/ca.pem", db.dsn));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("the TLS CA /nonexistent/ca.pem cannot be read"),
        "{said}"
    );
}

#[test]
fn a_password_for_another_machine_without_a_verified_server_is_warned_about() {
    let ca = tempfile::NamedTempFile::new().unwrap();
    let ca = ca.path().display().to_string();
    // 192.0.2.1 is a documentation address: nothing answers there.
    for (dsn, verified) in [
        (
            "postgres://app:pw-xyz@192.0.2.1/db?timeout=300ms&acquire_timeout=300ms".to_string(),
            false,
        ),
        (
            "mysql://app:pw-xyz@192.0.2.1/db?timeout=300ms&acquire_timeout=300ms&ssl-mode=REQUIRED"
                .to_string(),
            false,
        ),
        (
            format!(
                "postgres://app:pw-xyz@192.0.2.1/db?timeout=300ms&acquire_timeout=300ms&sslmode=verify-full&sslrootcert={ca}"
            ),
            true,
        ),
        (
            format!(
                "mysql://app:pw-xyz@192.0.2.1/db?timeout=300ms&acquire_timeout=300ms&ssl-mode=VERIFY_CA&ssl-ca={ca}"
            ),
            true,
        ),
    ] {
        let output = run_nene(&["check"], &[("NENE_SESSION_DSN", &dsn)]);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!said.contains("pw-xyz"), "{said}");
        assert_eq!(
            said.contains("does not verify the server"),
            !verified,
            "{dsn}: {said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    everything_on(Db {
        dsn: format!("sqlite://{}", path.display()),
        password: None,
        pdo: format!("'sqlite:{}'", path.display()),
        php_merge: "INSERT OR REPLACE INTO {t} (sess_id, sess_data, sess_lifetime, sess_time) VALUES (:id, :data, :expiry, :time)",
        columns: vec![
            ("sess_id", "text"),
            ("sess_data", "blob"),
            ("sess_lifetime", "integer"),
            ("sess_time", "integer"),
        ],
        columns_sql: "SELECT name, type FROM pragma_table_info('{t}') ORDER BY cid",
        lifetime_index_sql: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = '{t}' AND sql LIKE '%(sess_lifetime)%'",
    })
    .await;
}

/// The mode bits of `path` others than its owner have.
fn others_bits(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .mode()
        & 0o077
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_database_and_its_wal_and_shm_are_readable_by_nene_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let dsn = format!("sqlite://{}", path.display());
    let sessions = handler(&dsn, "", Duration::from_secs(600));
    let id = SessionIdFormat::new(32, 5).unwrap().generate();
    sessions
        .write(&id, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    // The pool keeps its connection open: the WAL and its index are there.
    for file in ["sessions.db", "sessions.db-wal", "sessions.db-shm"] {
        assert_eq!(others_bits(&dir.path().join(file)), 0, "{file}");
    }
}

#[test]
fn a_sqlite_database_others_can_read_stops_start_up_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dsn = format!("sqlite://{}", path.display());
    let check = run_nene(&["check"], &[("NENE_SESSION_DSN", &dsn)]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} has mode 0644", path.display()))
            && stderr.contains("chmod 0600"),
        "{stderr}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = run_nene(&["check"], &[("NENE_SESSION_DSN", &dsn)]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relative_sqlite_path_is_a_file_nene_creates_in_its_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let nene = Nene::start_adjusted(&[("NENE_SESSION_DSN", "sqlite://sessions.db")], |command| {
        command.current_dir(cwd.path());
    });
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = nginx.browser();
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, nene.log_text());
    let id = browser.session_id().unwrap();
    let dsn = format!("sqlite://{}", cwd.path().join("sessions.db").display());
    let stored = sql(
        &dsn,
        &format!("SELECT sess_data FROM sessions WHERE sess_id = '{id}'"),
    )
    .await;
    assert_eq!(stored, vec![vec![r#"{"count":1}"#.to_string()]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_sessions() {
    let server = MariaDb::start();
    let dsn = server.database("sql_sessions");
    everything_on(Db {
        dsn,
        password: Some(nene_test_support::mariadb::PASSWORD),
        pdo: format!(
            "'mysql:host=127.0.0.1;port={};dbname=sql_sessions', 'todo', '{}'",
            server.port,
            nene_test_support::mariadb::PASSWORD
        ),
        php_merge: "INSERT INTO {t} (sess_id, sess_data, sess_lifetime, sess_time) VALUES (:id, :data, :expiry, :time) ON DUPLICATE KEY UPDATE sess_data = VALUES(sess_data), sess_lifetime = VALUES(sess_lifetime), sess_time = VALUES(sess_time)",
        columns: vec![
            ("sess_id", "varbinary(128)"),
            ("sess_data", "mediumblob"),
            ("sess_lifetime", "int(10) unsigned"),
            ("sess_time", "int(10) unsigned"),
        ],
        columns_sql: "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{t}' ORDER BY ORDINAL_POSITION",
        lifetime_index_sql: "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{t}' AND COLUMN_NAME = 'sess_lifetime'",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sessions() {
    let server = Postgres::start();
    let dsn = server.database("sql_sessions");
    everything_on(Db {
        dsn,
        password: Some(nene_test_support::postgres::PASSWORD),
        pdo: format!(
            "'pgsql:host=127.0.0.1;port={};dbname=sql_sessions', 'todo', '{}'",
            server.port,
            nene_test_support::postgres::PASSWORD
        ),
        php_merge: "INSERT INTO {t} (sess_id, sess_data, sess_lifetime, sess_time) VALUES (:id, :data, :expiry, :time) ON CONFLICT (sess_id) DO UPDATE SET (sess_data, sess_lifetime, sess_time) = (EXCLUDED.sess_data, EXCLUDED.sess_lifetime, EXCLUDED.sess_time)",
        columns: vec![
            ("sess_id", "character varying(128)"),
            ("sess_data", "bytea"),
            ("sess_lifetime", "integer"),
            ("sess_time", "integer"),
        ],
        columns_sql: "SELECT CAST(column_name AS TEXT), CAST(CASE WHEN character_maximum_length IS NULL THEN data_type ELSE data_type || '(' || character_maximum_length || ')' END AS TEXT) FROM information_schema.columns WHERE table_name = '{t}' ORDER BY ordinal_position",
        lifetime_index_sql: "SELECT COUNT(*) FROM pg_indexes WHERE tablename = '{t}' AND indexdef LIKE '%(sess_lifetime)%'",
    })
    .await;
}
