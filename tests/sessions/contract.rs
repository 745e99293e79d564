//! The session backend contract, one suite run over every backend (files,
//! Redis, memcached, SQLite, MariaDB, PostgreSQL, a switch from files to
//! Redis under way; the handler's own part also over this process's
//! memory): what a [`SessionHandler`] promises on its own (data
//! round trips, expiry, locks, size bound, outage and recovery), and what a
//! visitor sees through a real nginx and nene (counter, login and logout,
//! strict ids, hostile cookies, concurrent increments, absolute lifetime).
//! A new backend implements [`Backend`] and adds one line to `contract!`.
//! Tests of what only one backend does (file modes, Redis TTLs and
//! commands) stay in that backend's own test file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nene::session::{
    BackendShorthands, FileOptions, FileSessionHandler, LiveSession, MemcachedSessionHandler,
    MemorySessionHandler, MigratingSessionHandler, RedisSessionHandler, SessionAdmin, SessionDsn,
    SessionError, SessionHandler, SessionId, SessionIdFormat, SqlSessionHandler, Stored,
    Unreadable,
};
use nene_test_support::browser::Browser;
use nene_test_support::fcgi_client::request_with_params;
use nene_test_support::in_process::InProcess;
use nene_test_support::mariadb::MariaDb;
use nene_test_support::memcached_server::MemcachedServer;
use nene_test_support::postgres::Postgres;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx};

/// What the suite needs of a backend: handlers with given bounds, nene's
/// settings for it, a look at what is stored, and a way to take it away.
trait Backend: Sized {
    /// A read-only session takes the lock for its read here (SQLite: the
    /// touch needs the database's one write lock).
    const READ_ONLY_TAKES_THE_LOCK: bool = false;
    fn start() -> Self;
    /// A backend `break_it` may take away: database servers are shared
    /// by the tests that do not, and this one has its own.
    fn start_breakable() -> Self {
        Self::start()
    }
    /// A handler whose sessions live `ttl`, whose lock waits `lock_wait`,
    /// and which loads at most `max_size` bytes.
    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin>;
    /// The NENE_* settings that point nene at this backend.
    fn env(&self) -> Vec<(String, String)>;
    /// The stored bytes of session `id`, read behind nene's back.
    fn stored(&self, id: &str) -> Option<Vec<u8>>;
    /// The ids of every stored session.
    fn stored_ids(&self) -> Vec<String>;
    /// Makes the backend unusable, as an outage or a full disk would.
    fn break_it(&mut self);
    /// Makes it usable again (a restarted Redis may have lost its data).
    fn repair(&mut self);
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn save_path(&self) -> PathBuf {
        self.dir.path().join("sessions")
    }

    fn kept(&self) -> PathBuf {
        self.dir.path().join("kept")
    }
}

impl Backend for Files {
    fn start() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin> {
        Arc::new(
            FileSessionHandler::new(&self.save_path(), ttl)
                .unwrap()
                .with_options(FileOptions {
                    lock_wait,
                    max_size,
                    ..FileOptions::default()
                }),
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![(
            "NENE_SESSION__SAVE_PATH".into(),
            self.save_path().display().to_string(),
        )]
    }

    fn stored(&self, id: &str) -> Option<Vec<u8>> {
        std::fs::read(self.save_path().join(format!("sess_{id}"))).ok()
    }

    fn stored_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.save_path())
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| !name.ends_with(".lock"))
                    .filter_map(|name| name.strip_prefix("sess_").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Replaces the directory with a file: every operation fails, even as root.
    fn break_it(&mut self) {
        std::fs::rename(self.save_path(), self.kept()).unwrap();
        std::fs::write(self.save_path(), "not a directory").unwrap();
    }

    fn repair(&mut self) {
        std::fs::remove_file(self.save_path()).unwrap();
        std::fs::rename(self.kept(), self.save_path()).unwrap();
    }
}

/// The DSN of a handler on the Redis or memcached server at `url`, whose
/// lock waits `lock_wait` and which sees an outage within 300 ms.
fn server_dsn(url: &str, lock_wait: Duration) -> SessionDsn {
    let dsn = format!(
        "{url}?lock_wait={}ms&timeout=300ms&connect_timeout=300ms",
        lock_wait.as_millis()
    );
    SessionDsn::parse(&dsn).unwrap()
}

struct Redis {
    server: RedisServer,
}

impl Backend for Redis {
    fn start() -> Self {
        Redis {
            server: RedisServer::start(),
        }
    }

    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin> {
        let dsn = server_dsn(&self.server.url(), lock_wait);
        Arc::new(
            RedisSessionHandler::new(&dsn, ttl)
                .unwrap()
                .with_max_size(max_size),
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("NENE_SESSION_DSN".into(), self.server.url())]
    }

    fn stored(&self, id: &str) -> Option<Vec<u8>> {
        self.server.db(0).get(&format!("sess_{id}"))
    }

    fn stored_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .server
            .db(0)
            .keys("sess_*")
            .into_iter()
            .filter(|key| !key.ends_with(".lock"))
            .filter_map(|key| key.strip_prefix("sess_").map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    fn break_it(&mut self) {
        self.server.kill();
    }

    fn repair(&mut self) {
        self.server.restart();
    }
}

/// This process's memory (`memory://`). It lives in the process that made
/// it, so it runs the handler's own tests only: the stack's tests run nene
/// as a process of its own, whose memory the test cannot look into.
struct Memory {
    first: MemorySessionHandler,
}

impl Backend for Memory {
    fn start() -> Self {
        Memory {
            first: MemorySessionHandler::new(LONG),
        }
    }

    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin> {
        Arc::new(
            self.first
                .on_the_same_store()
                .with_ttl(ttl)
                .with_lock_wait(lock_wait)
                .with_max_size(max_size),
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("NENE_SESSION_DSN".into(), "memory://".into())]
    }

    fn stored(&self, id: &str) -> Option<Vec<u8>> {
        let id = SessionId::from_store(id)?;
        match futures::executor::block_on(self.first.read(&id)) {
            Ok(Stored::Data(data)) => Some(data.to_vec()),
            _ => None,
        }
    }

    fn stored_ids(&self) -> Vec<String> {
        let page = futures::executor::block_on(self.first.list_sessions(None)).unwrap();
        page.sessions
            .into_iter()
            .map(|live| live.id.as_str().to_string())
            .collect()
    }

    fn break_it(&mut self) {
        panic!("this process's memory cannot be taken away: no outage test runs over it");
    }

    fn repair(&mut self) {}
}

/// A switch of backend under way (`session.migrate_from`): Redis in front,
/// files behind it. Everything the suite stores and reads is the new
/// backend's; the lock and its writes (the write chain, the fence) are
/// Redis', through the migrating handler's lock.
struct MigratingToRedis {
    redis: Redis,
    files: Files,
}

impl Backend for MigratingToRedis {
    fn start() -> Self {
        MigratingToRedis {
            redis: Redis::start(),
            files: Files::start(),
        }
    }

    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin> {
        Arc::new(MigratingSessionHandler::new(
            self.redis.handler(ttl, lock_wait, max_size),
            self.files.handler(ttl, lock_wait, max_size),
        ))
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.redis.env();
        env.extend(self.files.env());
        env.push(("NENE_SESSION__MIGRATE_FROM".into(), "files".into()));
        env
    }

    fn stored(&self, id: &str) -> Option<Vec<u8>> {
        self.redis.stored(id)
    }

    fn stored_ids(&self) -> Vec<String> {
        self.redis.stored_ids()
    }

    fn break_it(&mut self) {
        self.redis.break_it();
    }

    fn repair(&mut self) {
        self.redis.repair();
    }
}

struct Memcached {
    server: MemcachedServer,
}

impl Backend for Memcached {
    fn start() -> Self {
        Memcached {
            server: MemcachedServer::start(),
        }
    }

    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin> {
        let dsn = server_dsn(&self.server.url(), lock_wait);
        Arc::new(
            MemcachedSessionHandler::new(&dsn, ttl)
                .unwrap()
                .with_max_size(max_size),
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("NENE_SESSION_DSN".into(), self.server.url())]
    }

    fn stored(&self, id: &str) -> Option<Vec<u8>> {
        self.server.get(&format!("sess_{id}"))
    }

    fn stored_ids(&self) -> Vec<String> {
        self.server
            .keys()
            .into_iter()
            .filter(|key| !key.starts_with("sess_lock."))
            .filter_map(|key| key.strip_prefix("sess_").map(str::to_string))
            .collect()
    }

    fn break_it(&mut self) {
        self.server.kill();
    }

    fn repair(&mut self) {
        self.server.restart();
    }
}

/// The statement bounds of the SQL test handlers: short, so that an
/// outage is seen quickly, but not 300 ms: in CI, with this binary's 96
/// tests sharing two cores, one of 20 concurrent PostgreSQL writes of the
/// listing test once took longer than that.
const SQL_BOUNDS: &str = "timeout=1s&acquire_timeout=1s";

fn sql_handler(
    dsn: &str,
    ttl: Duration,
    lock_wait: Duration,
    max_size: u64,
) -> Arc<dyn SessionAdmin> {
    let dsn = format!("{dsn}?lock_wait={}ms&{SQL_BOUNDS}", lock_wait.as_millis());
    let dsn = SessionDsn::parse(&dsn).unwrap();
    Arc::new(
        SqlSessionHandler::new(&dsn, ttl)
            .unwrap()
            .with_max_size(max_size),
    )
}

/// `hex` (as the database clients print it) as bytes.
fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
        .collect()
}

/// A SQLite file in a temporary directory.
struct Sqlite {
    dir: tempfile::TempDir,
    /// The test's own connection holding the whole file (`break_it`).
    hog: Option<std::sync::mpsc::Sender<()>>,
}

impl Sqlite {
    fn path(&self) -> PathBuf {
        self.dir.path().join("sessions.db")
    }

    fn dsn(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    fn rows(&self, sql: &str) -> Vec<(String, Vec<u8>)> {
        let sql = sql.to_string();
        spawn_on_own_connection(self.path(), async move |db| {
            use sqlx::Row;
            match sqlx::query(&sql).fetch_all(db).await {
                Ok(rows) => rows
                    .iter()
                    .map(|row| (row.get::<String, _>(0), row.get::<Vec<u8>, _>(1)))
                    .collect(),
                // Nothing stored yet: no table.
                Err(error) if error.to_string().contains("no such table") => Vec::new(),
                Err(error) => panic!("{sql}: {error}"),
            }
        })
        .join()
        .unwrap()
    }
}

/// Runs `work` on a connection of the test's own to the SQLite file at
/// `path`, in a thread with a runtime of its own (the tests call this
/// inside theirs).
fn spawn_on_own_connection<T: Send + 'static>(
    path: PathBuf,
    work: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            work(&mut db).await
        })
    })
}

impl Backend for Sqlite {
    const READ_ONLY_TAKES_THE_LOCK: bool = true;
    fn start() -> Self {
        Sqlite {
            dir: tempfile::tempdir().unwrap(),
            hog: None,
        }
    }

    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin> {
        sql_handler(&self.dsn(), ttl, lock_wait, max_size)
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![(
            "NENE_SESSION_DSN".into(),
            format!("{}?lock_wait=1s&timeout=1s", self.dsn()),
        )]
    }

    fn stored(&self, id: &str) -> Option<Vec<u8>> {
        let id = id.replace('\'', "");
        self.rows(&format!(
            "SELECT sess_id, CAST(sess_data AS BLOB) FROM sessions WHERE sess_id = '{id}'"
        ))
        .pop()
        .map(|(_, data)| data)
    }

    fn stored_ids(&self) -> Vec<String> {
        self.rows("SELECT sess_id, x'' FROM sessions ORDER BY sess_id")
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// Another connection takes the whole file (`BEGIN EXCLUSIVE`), as
    /// another process might: every statement of nene's waits and fails.
    /// (Renaming the file or its directory would not do: open connections
    /// keep using it, and chmod does not stop root.)
    fn break_it(&mut self) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (locked, is_locked) = std::sync::mpsc::channel::<()>();
        spawn_on_own_connection(self.path(), async move |db| {
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut *db)
                .await
                .unwrap();
            locked.send(()).unwrap();
            let _ = released.recv();
            sqlx::query("ROLLBACK").execute(db).await.unwrap();
        });
        is_locked.recv().unwrap();
        self.hog = Some(release);
    }

    fn repair(&mut self) {
        if let Some(release) = self.hog.take() {
            let _ = release.send(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The database servers the tests of this binary share, each test in a
/// database of its own; stopped when the binary exits.
static SHARED_MARIADB: std::sync::OnceLock<std::sync::Mutex<MariaDb>> = std::sync::OnceLock::new();
static SHARED_POSTGRES: std::sync::OnceLock<std::sync::Mutex<Postgres>> =
    std::sync::OnceLock::new();

extern "C" fn stop_shared_servers() {
    if let Some(server) = SHARED_MARIADB.get()
        && let Ok(mut server) = server.lock()
    {
        server.kill();
        let _ = std::fs::remove_dir_all(server.dir());
    }
    if let Some(server) = SHARED_POSTGRES.get()
        && let Ok(mut server) = server.lock()
    {
        server.kill();
        let _ = std::fs::remove_dir_all(server.dir());
    }
}

fn register_stop() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: atexit with a function that lives as long as the program.
    ONCE.call_once(|| unsafe {
        libc::atexit(stop_shared_servers);
    });
}

/// A database name no other test of this binary uses.
fn fresh_database() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "sessions_{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Where a server backend's database is: the shared server, or one of its own.
enum Server<S: 'static> {
    Shared(&'static std::sync::Mutex<S>),
    Own(S),
}

impl<S: 'static> Server<S> {
    fn with<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        match self {
            // A test that failed while holding it does not fail the others.
            Server::Shared(server) => f(&server.lock().unwrap_or_else(|e| e.into_inner())),
            Server::Own(server) => f(server),
        }
    }

    fn own(&mut self) -> &mut S {
        match self {
            Server::Own(server) => server,
            Server::Shared(_) => panic!("a shared server is not broken; use start_breakable"),
        }
    }
}

/// What the suite needs of a database server, beyond starting it: a
/// database of its own per test, a look at its rows, and an outage.
trait DatabaseServer: Sized + Send + 'static {
    fn start() -> Self;
    /// The server this test binary shares.
    fn shared() -> &'static std::sync::OnceLock<std::sync::Mutex<Self>>;
    /// Creates database `name`; its DSN.
    fn create(&self, name: &str) -> String;
    /// What `sql` prints in database `name`, a row a line.
    fn rows(&self, database: &str, sql: &str) -> String;
    /// The session table's `sess_data` as hex, in this server's SQL.
    const HEX_DATA: &'static str;
    /// 1 when the current database has the session table, else 0.
    const HAS_TABLE: &'static str;
    fn stop(&mut self);
    fn start_again(&mut self);
}

impl DatabaseServer for MariaDb {
    fn start() -> Self {
        MariaDb::start()
    }
    fn shared() -> &'static std::sync::OnceLock<std::sync::Mutex<Self>> {
        &SHARED_MARIADB
    }
    fn create(&self, name: &str) -> String {
        self.database(name)
    }
    fn rows(&self, database: &str, sql: &str) -> String {
        self.query(&format!("USE {database}; {sql}"))
    }
    const HEX_DATA: &'static str = "HEX(sess_data)";
    const HAS_TABLE: &'static str = "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name = 'sessions'";
    fn stop(&mut self) {
        MariaDb::stop(self)
    }
    fn start_again(&mut self) {
        MariaDb::start_again(self)
    }
}

impl DatabaseServer for Postgres {
    fn start() -> Self {
        Postgres::start()
    }
    fn shared() -> &'static std::sync::OnceLock<std::sync::Mutex<Self>> {
        &SHARED_POSTGRES
    }
    fn create(&self, name: &str) -> String {
        self.database(name)
    }
    fn rows(&self, database: &str, sql: &str) -> String {
        self.query(database, sql)
    }
    const HEX_DATA: &'static str = "encode(sess_data, 'hex')";
    const HAS_TABLE: &'static str = "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = 'sessions'";
    fn stop(&mut self) {
        Postgres::stop(self)
    }
    fn start_again(&mut self) {
        Postgres::start_again(self)
    }
}

/// MariaDB or PostgreSQL, in a database of the test's own.
struct OnServer<S: DatabaseServer> {
    server: Server<S>,
    database: String,
    dsn: String,
}

type MariaDbBackend = OnServer<MariaDb>;
type PostgresBackend = OnServer<Postgres>;

impl<S: DatabaseServer> OnServer<S> {
    fn on(server: Server<S>) -> Self {
        let database = fresh_database();
        let dsn = server.with(|server| server.create(&database));
        OnServer {
            server,
            database,
            dsn,
        }
    }

    fn rows(&self, sql: &str) -> String {
        self.server.with(|server| server.rows(&self.database, sql))
    }
}

impl<S: DatabaseServer> Backend for OnServer<S> {
    fn start() -> Self {
        register_stop();
        let server = S::shared().get_or_init(|| std::sync::Mutex::new(S::start()));
        Self::on(Server::Shared(server))
    }

    fn start_breakable() -> Self {
        Self::on(Server::Own(S::start()))
    }

    fn handler(&self, ttl: Duration, lock_wait: Duration, max_size: u64) -> Arc<dyn SessionAdmin> {
        sql_handler(&self.dsn, ttl, lock_wait, max_size)
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![(
            "NENE_SESSION_DSN".into(),
            format!("{}?lock_wait=1s&timeout=1s", self.dsn),
        )]
    }

    fn stored(&self, id: &str) -> Option<Vec<u8>> {
        let id = id.replace('\'', "");
        let hex = self.rows(&format!(
            "SELECT {} FROM sessions WHERE sess_id = '{id}'",
            S::HEX_DATA
        ));
        hex.lines().next().map(unhex)
    }

    fn stored_ids(&self) -> Vec<String> {
        // The table exists once a handler has been used.
        if self.rows(S::HAS_TABLE).trim() == "0" {
            return Vec::new();
        }
        self.rows("SELECT sess_id FROM sessions ORDER BY sess_id")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn break_it(&mut self) {
        self.server.own().stop();
    }

    fn repair(&mut self) {
        self.server.own().start_again();
    }
}

fn new_id() -> SessionId {
    SessionIdFormat::new(32, 5).unwrap().generate()
}

/// Session `id` with `seconds` left to live, as a listing reports one.
fn lasting(id: &SessionId, seconds: u64) -> LiveSession {
    LiveSession {
        id: id.clone(),
        remaining: Duration::from_secs(seconds),
    }
}

const LONG: Duration = Duration::from_secs(600);
const MAX: u64 = 4 * 1024 * 1024;

/// nene and nginx in front of `backend`, with `extra` settings.
fn stack<B: Backend>(backend: &B, extra: &[(&str, &str)]) -> (Nene, Nginx) {
    let env = backend.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    let nene = Nene::start(&all);
    let nginx = Nginx::start(&nene.upstream, true);
    (nene, nginx)
}

// ---- the handler on its own ----

async fn stored_data_reads_back_exactly<B: Backend>() {
    let backend = B::start();
    let sessions = backend.handler(LONG, Duration::from_secs(1), MAX);
    let id = new_id();
    assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
    assert!(!sessions.exists(&id).await.unwrap());
    let every_byte: Vec<u8> = (0..=255).collect();
    for data in [every_byte, vec![7u8; 1 << 20], Vec::new()] {
        sessions
            .write(&id, Bytes::from(data.clone()))
            .await
            .unwrap();
        assert_eq!(sessions.read(&id).await.unwrap(), Stored::Data(data.into()));
        assert!(sessions.exists(&id).await.unwrap());
    }
    sessions.destroy(&id).await.unwrap();
    assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
    assert!(!sessions.exists(&id).await.unwrap());
    sessions.destroy(&id).await.unwrap();
    sessions.ping().await.unwrap();
    assert_eq!(sessions.gc().await.unwrap(), 0, "nothing expired");
}

async fn a_session_expires_after_its_lifetime_unless_touched<B: Backend>() {
    let backend = B::start();
    let sessions = backend.handler(Duration::from_secs(2), Duration::from_secs(1), MAX);
    let id = new_id();
    sessions
        .write(&id, Bytes::from_static(b"alive"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sessions.touch(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        sessions.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"alive")),
        "the touch restarted the lifetime"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
    // A touch does not bring it back.
    sessions.touch(&id).await.unwrap();
    assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
}

/// A read-only session's read (`read_for_read_only`): the stored data
/// without waiting for a held lock and without taking it (where the backend
/// says it must take it: after the holder), and nothing created for an id
/// that is not stored.
async fn a_read_for_a_read_only_session_passes_a_held_lock<B: Backend>() {
    let backend = B::start();
    let sessions = backend.handler(LONG, Duration::from_millis(300), MAX);
    let id = new_id();
    let (lock, stored) = sessions.clone().read_for_read_only(&id).await.unwrap();
    assert_eq!(stored, Stored::Missing);
    lock.release().await.unwrap();
    assert!(
        !sessions.exists(&id).await.unwrap(),
        "a read-only read stored the session"
    );
    let alive = Stored::Data(Bytes::from_static(b"alive"));
    sessions
        .write(&id, Bytes::from_static(b"alive"))
        .await
        .unwrap();
    let (held, _) = sessions.locked_read(&id).await.unwrap();
    if B::READ_ONLY_TAKES_THE_LOCK {
        assert_lock_timeout_after_300ms(async {
            sessions
                .clone()
                .read_for_read_only(&id)
                .await
                .map(|(lock, _)| lock)
        })
        .await;
        held.release().await.unwrap();
        let (lock, stored) = sessions.clone().read_for_read_only(&id).await.unwrap();
        assert_eq!(stored, alive);
        assert!(lock.is_held(), "read without the lock it needs");
        lock.release().await.unwrap();
    } else {
        let started = Instant::now();
        let (lock, stored) = sessions.clone().read_for_read_only(&id).await.unwrap();
        let took = started.elapsed();
        assert_eq!(stored, alive);
        assert!(
            took < Duration::from_millis(250),
            "waited for the lock: {took:?}"
        );
        // What the read holds (Redis: the expiry it restarted) is given
        // back; the holder still holds the lock: another lock waits.
        lock.release().await.unwrap();
        assert_lock_timeout_after_300ms(sessions.lock(&id)).await;
        held.release().await.unwrap();
    }
}

/// `lock` ends in a lock timeout after its 300 ms wait (and well before 3 s).
async fn assert_lock_timeout_after_300ms(
    lock: impl std::future::Future<Output = Result<nene::session::SessionLock, SessionError>>,
) {
    let started = Instant::now();
    let refused = lock.await;
    assert!(
        matches!(refused, Err(SessionError::LockTimeout { .. })),
        "{:?}",
        refused.map(|_| ())
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

async fn a_lock_excludes_others_until_released_and_waiting_is_bounded<B: Backend>() {
    let backend = B::start();
    let impatient = backend.handler(LONG, Duration::from_millis(300), MAX);
    let patient = backend.handler(LONG, Duration::from_secs(5), MAX);
    let id = new_id();
    let (held, stored) = patient.locked_read(&id).await.unwrap();
    assert!(held.is_held());
    assert_eq!(stored, Stored::Missing);

    assert_lock_timeout_after_300ms(impatient.lock(&id)).await;
    // A wait given per call overrides the handler's own (the session
    // runtime gives what is left of it after the in-process queue).
    assert_lock_timeout_after_300ms(patient.lock_within(&id, Duration::from_millis(300))).await;

    let waiter = {
        let patient = patient.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let lock = patient.lock(&id).await.unwrap();
            (started.elapsed(), lock)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    patient
        .save_and_unlock(&id, Some(Bytes::from_static(b"saved")), held)
        .await
        .unwrap();
    let (waited, lock) = waiter.await.unwrap();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert_eq!(
        patient.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"saved"))
    );
    // A lock dropped without release (a cancelled request) frees the
    // session too.
    drop(lock);
    let again = tokio::time::timeout(Duration::from_secs(2), patient.lock(&id)).await;
    assert!(
        matches!(again, Ok(Ok(_))),
        "the dropped lock was never freed"
    );
}

async fn a_stored_value_over_max_size_is_reported_not_loaded<B: Backend>() {
    let backend = B::start();
    let sessions = backend.handler(LONG, Duration::from_secs(1), 1024);
    let id = new_id();
    sessions
        .write(&id, Bytes::from(vec![b'x'; 1025]))
        .await
        .unwrap();
    let (lock, stored) = sessions.locked_read(&id).await.unwrap();
    assert_eq!(
        stored,
        Stored::Unreadable(Unreadable::TooLarge {
            size: 1025,
            max: 1024
        })
    );
    assert!(lock.is_held(), "the request keeps its lock");
    lock.release().await.unwrap();
    sessions
        .write(&id, Bytes::from(vec![b'x'; 1024]))
        .await
        .unwrap();
    assert_eq!(
        sessions.read(&id).await.unwrap(),
        Stored::Data(Bytes::from(vec![b'x'; 1024]))
    );
}

async fn an_unusable_backend_is_an_error_and_recovery_needs_no_new_handler<B: Backend>() {
    let mut backend = B::start_breakable();
    let sessions = backend.handler(LONG, Duration::from_secs(1), MAX);
    let id = new_id();
    sessions.write(&id, Bytes::from_static(b"x")).await.unwrap();
    backend.break_it();
    let started = Instant::now();
    assert!(sessions.ping().await.is_err());
    assert!(sessions.write(&id, Bytes::from_static(b"y")).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3), "no hang");
    backend.repair();
    let mut recovered = false;
    for _ in 0..30 {
        if sessions.ping().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the same handler works again");
    sessions.write(&id, Bytes::from_static(b"z")).await.unwrap();
    assert_eq!(
        sessions.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"z"))
    );
}

async fn listing_pages_through_every_live_session_with_its_remaining_lifetime<B: Backend>() {
    use std::collections::BTreeMap;
    let backend = B::start();
    let sessions = backend.handler(LONG, Duration::from_secs(1), MAX);
    // More than two pages, written 20 at a time.
    let ids: Vec<SessionId> = (0..2 * nene::session::LIST_PAGE_SIZE + 100)
        .map(|_| new_id())
        .collect();
    for chunk in ids.chunks(20) {
        let writes = chunk
            .iter()
            .map(|id| sessions.write(id, Bytes::from(id.as_str().to_string())));
        for written in futures::future::join_all(writes).await {
            written.unwrap();
        }
    }
    // An id a PHP application made (26 characters of 5 bits), one with a
    // shorter lifetime, one that expires before the listing, and a held lock.
    let php_id = SessionIdFormat::new(26, 5).unwrap().generate();
    sessions
        .store_copy(&lasting(&php_id, 120), Bytes::from_static(b"php"))
        .await
        .unwrap();
    let gone = new_id();
    sessions
        .store_copy(&lasting(&gone, 1), Bytes::from_static(b"gone"))
        .await
        .unwrap();
    let (held, _) = sessions.locked_read(&ids[0]).await.unwrap();
    // Sessions in use are listed too. memcached moves an item that is read
    // again after it aged into its COLD list, and a walk of its LRU lists
    // misses the item meanwhile: read 20 now, and again just before listing.
    for id in &ids[1..=20] {
        sessions.read(id).await.unwrap();
    }
    // Whole-second clocks (memcached's, SQL timestamps) may keep it up to a
    // second longer; past three it must be gone.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(sessions.read(&gone).await.unwrap(), Stored::Missing);
    for id in &ids[1..=20] {
        sessions.read(id).await.unwrap();
    }

    let pages = crate::every_page(&*sessions).await;
    let mut listed = BTreeMap::new();
    for page in &pages {
        // SCAN's COUNT is a hint: a page is about the page size, never the store.
        assert!(page.sessions.len() <= 2 * nene::session::LIST_PAGE_SIZE);
        for live in &page.sessions {
            listed.insert(live.id.as_str().to_string(), live.remaining);
        }
    }
    held.release().await.unwrap();
    assert!(pages.len() >= 2, "{} pages", pages.len());
    let php_left = listed
        .remove(php_id.as_str())
        .expect("the PHP id is listed");
    assert!(
        php_left > Duration::from_secs(100) && php_left <= Duration::from_secs(120),
        "{php_left:?}"
    );
    let mut expected: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
    expected.sort();
    assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), expected);
    for (id, left) in listed {
        assert!(
            left > LONG - Duration::from_secs(60) && left <= LONG,
            "{id}: {left:?}"
        );
    }
    // What the listing reports is what a copy writes back.
    assert_eq!(
        sessions.read(&php_id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"php"))
    );
}

// ---- through nginx and nene ----

async fn the_counter_counts_under_the_cookie_id_and_sets_the_cookie_once<B: Backend>() {
    let backend = B::start();
    let (_nene, nginx) = stack(&backend, &[]);
    let mut browser = nginx.browser();
    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["count"], expected);
        assert_eq!(
            page.headers["cache-control"],
            "no-store, no-cache, must-revalidate"
        );
        assert_eq!(page.headers["pragma"], "no-cache");
    }
    assert_eq!(browser.set_cookies.len(), 1, "{:?}", browser.set_cookies);
    let cookie = &browser.set_cookies[0];
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let id = browser.session_id().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(backend.stored_ids(), vec![id.clone()]);
    assert_eq!(backend.stored(&id).unwrap(), br#"{"count":3}"#.to_vec());
}

async fn login_moves_the_data_to_a_new_id_and_logout_destroys_it<B: Backend>() {
    let backend = B::start();
    let (_nene, nginx) = stack(&backend, &[]);
    let mut browser = nginx.browser();
    browser.get("/session/counter").await;
    let before_login = browser.session_id().unwrap();
    let page = browser.post_form("/session/login", "user=alice").await;
    assert_eq!(page.json()["user"], "alice");
    let after_login = browser.session_id().unwrap();
    assert_ne!(before_login, after_login, "login must regenerate the id");
    assert_eq!(backend.stored_ids(), vec![after_login.clone()]);
    assert_eq!(browser.get("/session/whoami").await.json()["user"], "alice");
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);

    let page = browser.post_form("/session/logout", "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.set_cookies()[0].contains("Max-Age=0"),
        "{:?}",
        page.set_cookies()
    );
    assert!(browser.session_id().is_none());
    assert_eq!(backend.stored_ids(), Vec::<String>::new());
    assert!(browser.get("/session/whoami").await.json()["user"].is_null());
}

/// `/session/whoami` takes the read-only session: it answers while another
/// request holds the session's lock (where the backend reads without it),
/// restarts the session's expiry, writes nothing, sends no cookie, and
/// replaces no unknown id.
async fn a_read_only_request_passes_a_held_lock_and_writes_nothing<B: Backend>() {
    let backend = B::start();
    let (_nene, nginx) = stack(&backend, &[("NENE_SESSION__GC_MAXLIFETIME", "3")]);
    let mut browser = nginx.browser();
    browser.post_form("/session/login", "user=alice").await;
    let cookie = browser.session_id().unwrap();
    let stored = backend
        .stored(&cookie)
        .expect("the login stored the session");

    let holder = backend.handler(LONG, Duration::from_secs(5), MAX);
    let id = SessionIdFormat::new(32, 5).unwrap().parse(&cookie).unwrap();
    let (held, _) = holder.locked_read(&id).await.unwrap();
    let reading = browser.get("/session/whoami");
    let page = if B::READ_ONLY_TAKES_THE_LOCK {
        // It waits for the holder, like any request of the session.
        tokio::pin!(reading);
        assert!(
            tokio::time::timeout(Duration::from_millis(500), &mut reading)
                .await
                .is_err(),
            "answered while the lock was held"
        );
        held.release().await.unwrap();
        reading.await
    } else {
        let page = tokio::time::timeout(Duration::from_secs(3), reading)
            .await
            .expect("the read-only request waited for the held lock");
        held.release().await.unwrap();
        page
    };
    assert_eq!(page.status, 200);
    assert_eq!(page.json()["user"], "alice");
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    assert_eq!(backend.stored(&cookie), Some(stored));

    // The expiry restarts: read at 2 s of a 3 s lifetime, the session is
    // there at 4.4 s (memcached, whose clock ticks in whole seconds, keeps
    // an untouched one until about 4 s).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(browser.get("/session/whoami").await.json()["user"], "alice");
    tokio::time::sleep(Duration::from_millis(2400)).await;
    assert_eq!(
        browser.get("/session/whoami").await.json()["user"],
        "alice",
        "a read-only request did not restart the expiry"
    );

    // A stranger, and an id nobody issued: nothing stored, no cookie.
    let mut stranger = Browser::new(&nginx.url(""));
    let page = stranger.get("/session/whoami").await;
    assert!(page.json()["user"].is_null());
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    let planted = "0123456789abcdefghijklmnopqrstuv";
    stranger.cookies.insert("NENESESSID".into(), planted.into());
    let page = stranger.get("/session/whoami").await;
    assert!(page.json()["user"].is_null());
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    assert_eq!(backend.stored_ids(), vec![cookie]);
}

async fn an_unknown_id_is_replaced_and_never_stored<B: Backend>() {
    let backend = B::start();
    let (_nene, nginx) = stack(&backend, &[]);
    let mut browser = nginx.browser();
    let planted = "0123456789abcdefghijklmnopqrstuv";
    browser.cookies.insert("NENESESSID".into(), planted.into());
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let issued = browser.session_id().unwrap();
    assert_ne!(issued, planted);
    assert_eq!(backend.stored_ids(), vec![issued]);
}

async fn hostile_session_cookies_never_reach_the_backend<B: Backend>() {
    let backend = B::start();
    let (nene, nginx) = stack(&backend, &[]);
    let valid_looking = "0123456789abcdefghijklmnopqrstuv";
    let many_same_name = (0..200)
        .map(|i| format!("NENESESSID=bad{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let cookies: Vec<Vec<u8>> = vec![
        b"NENESESSID=".to_vec(),
        b"NENESESSID=*".to_vec(),
        b"NENESESSID=sess_*".to_vec(),
        b"NENESESSID=../../etc/passwd".to_vec(),
        b"NENESESSID=abc\x00def".to_vec(),
        b"NENESESSID=abc\r\nX-Injected: 1".to_vec(),
        b"NENESESSID=0123456789abcdefghijklmnopqrstuvw".to_vec(),
        format!("NENESESSID={}", "a".repeat(4096)).into_bytes(),
        "NENESESSID=ééééééééééééééééééééééééééééééé"
            .as_bytes()
            .to_vec(),
        format!("NENESESSID={}\u{2028}", &valid_looking[..31]).into_bytes(),
        many_same_name.into_bytes(),
    ];
    for (n, cookie) in cookies.iter().enumerate() {
        // Straight to nene (nginx and HTTP clients refuse some of these).
        let response = request_with_params(
            &nene.addr,
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/session/whoami"),
                (b"HTTP_COOKIE", cookie),
            ],
        )
        .await;
        assert_eq!(response.status(), 200, "cookie {n}");
        assert_eq!(response.body_text(), r#"{"user":null}"#, "cookie {n}");
        let head = String::from_utf8_lossy(response.head()).to_string();
        assert!(!head.contains("X-Injected"), "cookie {n}: {head}");
    }
    assert_eq!(
        backend.stored_ids(),
        Vec::<String>::new(),
        "no session was started for any of them"
    );
    // Among many cookies of the name, the first valid one counts.
    let mut browser = nginx.browser();
    browser.get("/session/counter").await;
    let good = browser.session_id().unwrap();
    let header = format!("NENESESSID=junk; NENESESSID={good}; NENESESSID=zzz");
    let page = browser
        .get_with_cookie_header("/session/counter", header.as_bytes())
        .await;
    assert_eq!(page.json()["count"], 2);
}

async fn one_hundred_requests_twenty_at_a_time_lose_no_increment<B: Backend>() {
    let backend = B::start();
    let (_nene, nginx) = stack(&backend, &[]);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    assert_eq!(browser.hammer_counter(20, 5).await, 100);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 102);
    // Queued requests start from what their predecessor handed over.
    let status = browser.get("/status?json").await;
    let hand_offs = status.json()["session lock hand-offs"].as_u64().unwrap();
    assert!(hand_offs > 0, "{}", status.body);
}

/// `env` with the lock wait set to `wait` (the files setting, or the DSN's
/// `lock_wait` option).
fn with_lock_wait(env: Vec<(String, String)>, wait: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .map(|(name, value)| {
            if name != "NENE_SESSION_DSN" {
                return (name, value);
            }
            let (base, query) = value.split_once('?').unwrap_or((&value, ""));
            let mut options: Vec<&str> = query
                .split('&')
                .filter(|option| !option.is_empty() && !option.starts_with("lock_wait="))
                .collect();
            let lock_wait = format!("lock_wait={wait}");
            options.push(&lock_wait);
            (name, format!("{base}?{}", options.join("&")))
        })
        .collect();
    env.push(("NENE_SESSION__SAVE_PATH_LOCK_WAIT".into(), wait.into()));
    env
}

async fn one_lock_wait_bounds_the_queue_and_the_backend_lock_together<B: Backend>() {
    let backend = B::start();
    let env = with_lock_wait(backend.env(), "2s");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let nene = Nene::start(&env);
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let id = SessionId::from_store(&browser.session_id().unwrap()).unwrap();
    // Another instance holds the session's lock throughout.
    let other_instance = backend.handler(LONG, LONG, MAX);
    let held = other_instance.lock(&id).await.unwrap();

    // The first request waits at the backend; the second, 200 ms later,
    // queues behind it in nene, then gets only what is left of its wait.
    let timed = |mut browser: Browser| async move {
        let started = Instant::now();
        let status = browser.get("/session/counter").await.status;
        (status, started.elapsed())
    };
    let first = tokio::spawn(timed(browser.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = tokio::spawn(timed(browser.clone()));
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!((first.0, second.0), (503, 503), "{}", nene.log_text());
    assert!(first.1 >= Duration::from_secs(2), "{first:?}");
    // One wait takes about 1.8 s; two one after the other about 3.8 s.
    assert!(second.1 < Duration::from_secs(3), "{second:?}");

    drop(held);
    // Its release may run in the background (a dropped lock).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = browser.get("/session/counter").await;
        if page.status == 200 {
            assert_eq!(
                page.json()["count"],
                2,
                "the refused requests stored nothing"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the lock was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn two_instances_share_one_session_and_lose_no_increment<B: Backend>() {
    let backend = B::start();
    let env = backend.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let first = Nene::start(&env);
    let second = Nene::start(&env);
    let nginx = Nginx::start_balancing(vec![&first.upstream, &second.upstream]);
    let mut browser = nginx.browser();
    assert_eq!(
        browser.post_form("/session/login", "user=ann").await.json()["user"],
        "ann"
    );
    // Round robin: every other request reaches the other instance, which
    // knows the session only through the backend.
    for _ in 0..4 {
        assert_eq!(browser.get("/session/whoami").await.json()["user"], "ann");
    }
    assert_eq!(browser.hammer_counter(20, 5).await, 100);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 101);
}

async fn the_absolute_lifetime_ends_a_session_however_active<B: Backend>() {
    let backend = B::start();
    let (_nene, nginx) = stack(&backend, &[("NENE_SESSION__ABSOLUTE_LIFETIME", "1")]);
    let mut browser = nginx.browser();
    browser.post_form("/session/login", "user=alice").await;
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    let first_id = browser.session_id().unwrap();
    assert_eq!(browser.get("/session/whoami").await.json()["user"], "alice");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // A read-only request sees it ended, and leaves it to be replaced.
    let page = browser.get("/session/whoami").await;
    assert!(page.json()["user"].is_null(), "{}", page.body);
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let second_id = browser.session_id().unwrap();
    assert_ne!(second_id, first_id);
    assert_eq!(backend.stored_ids(), vec![second_id]);
}

async fn an_outage_gives_503_other_routes_keep_working_and_sessions_come_back<B: Backend>() {
    let mut backend = B::start_breakable();
    let (nene, nginx) = stack(&backend, &[]);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    backend.break_it();
    let started = Instant::now();
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(page.headers["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_secs(3), "no hang");
    assert_eq!(browser.get("/health").await.status, 200);
    backend.repair();
    let mut recovered = false;
    for _ in 0..30 {
        if browser.get("/session/counter").await.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "sessions did not come back without a restart");
    let log = nene.log_text();
    assert!(log.contains("session"), "a log line names the failure");
    assert!(!log.contains("panicked"), "{log}");
}

/// Routes that use the rest of the session handle: `remove` and `id`.
fn handle_app() -> axum::Router {
    use axum::routing::get;
    use nene::Session;
    async fn set(session: Session) -> Result<&'static str, SessionError> {
        session.insert("a", 1).await?;
        session.insert("b", 2).await?;
        Ok("set")
    }
    async fn remove(session: Session) -> Result<String, SessionError> {
        Ok(serde_json::to_string(&session.remove("a").await?).unwrap())
    }
    async fn id(session: Session) -> Result<String, SessionError> {
        session.id().await
    }
    axum::Router::new()
        .route("/set", get(set))
        .route("/remove", get(remove))
        .route("/id", get(id))
}

async fn remove_hands_back_the_value_and_stores_its_absence_and_id_names_the_cookie<B: Backend>() {
    let backend = B::start();
    let env = backend.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (server, _dir) = InProcess::start_app(handle_app(), &env).await;
    let nginx = Nginx::start(&server.addr, true);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/set").await.body, "set");
    let id = browser.session_id().expect("a session");
    assert_eq!(browser.get("/id").await.body, id);
    assert_eq!(browser.get("/remove").await.body, "1");
    let stored = String::from_utf8(backend.stored(&id).unwrap()).unwrap();
    assert_eq!(stored, r#"{"b":2}"#);
    assert_eq!(browser.get("/remove").await.body, "null");
    server.stop().await;
}

/// `contract!(module => Backend, …; tests…)`: a module per backend, each
/// with a test per contract function, run over that backend.
macro_rules! contract {
    ($($module:ident => $backend:ident),+ $(,)?; $tests:tt) => {
        $(contract!(@module $module, $backend, $tests);)+
    };
    (@module $module:ident, $backend:ident, [$($test:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    super::$test::<super::$backend>().await
                }
            )*
        }
    };
}

// Every contract test, for every backend: `files::…`, `redis::…`,
// `migrating_to_redis::…`, `memcached::…`, `sqlite::…`, `mariadb::…`,
// `postgres::…`.
contract!(
    files => Files,
    redis => Redis,
    migrating_to_redis => MigratingToRedis,
    memcached => Memcached,
    sqlite => Sqlite,
    mariadb => MariaDbBackend,
    postgres => PostgresBackend;
    [
        stored_data_reads_back_exactly,
        a_session_expires_after_its_lifetime_unless_touched,
        a_lock_excludes_others_until_released_and_waiting_is_bounded,
        a_stored_value_over_max_size_is_reported_not_loaded,
        an_unusable_backend_is_an_error_and_recovery_needs_no_new_handler,
        listing_pages_through_every_live_session_with_its_remaining_lifetime,
        the_counter_counts_under_the_cookie_id_and_sets_the_cookie_once,
        login_moves_the_data_to_a_new_id_and_logout_destroys_it,
        an_unknown_id_is_replaced_and_never_stored,
        a_read_only_request_passes_a_held_lock_and_writes_nothing,
        a_read_for_a_read_only_session_passes_a_held_lock,
        hostile_session_cookies_never_reach_the_backend,
        one_hundred_requests_twenty_at_a_time_lose_no_increment,
        two_instances_share_one_session_and_lose_no_increment,
        one_lock_wait_bounds_the_queue_and_the_backend_lock_together,
        the_absolute_lifetime_ends_a_session_however_active,
        an_outage_gives_503_other_routes_keep_working_and_sessions_come_back,
        remove_hands_back_the_value_and_stores_its_absence_and_id_names_the_cookie,
    ]
);

// The handler's own tests over this process's memory (see [`Memory`]):
// the suite's fast tier, which needs no service (`scripts/test --fast`).
contract!(
    memory => Memory;
    [
        stored_data_reads_back_exactly,
        a_session_expires_after_its_lifetime_unless_touched,
        a_lock_excludes_others_until_released_and_waiting_is_bounded,
        a_stored_value_over_max_size_is_reported_not_loaded,
        listing_pages_through_every_live_session_with_its_remaining_lifetime,
        a_read_for_a_read_only_session_passes_a_held_lock,
    ]
);
