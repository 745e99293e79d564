//! SQL session DSNs: `sqlite://path`, `mysql://…` (`mariadb://…`) and
//! `postgres://…` (`postgresql://…`), parsed into a [`SqlDsn`]: which
//! database, where, as whom, and the options of the table below.
//!
//! | DSN | database |
//! | --- | --- |
//! | `sqlite://sessions.db` | SQLite file relative to the working directory, created if missing |
//! | `sqlite:///var/lib/nene/sessions.db` | SQLite file by absolute path |
//! | `mysql://user:password@host[:port]/db` (or `mariadb://`) | MySQL or MariaDB; port 3306 by default |
//! | `postgres://user:password@host[:port]/db` (or `postgresql://`) | PostgreSQL; port 5432 by default |
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `table` | `sessions` | the table (Symfony `PdoSessionHandler`'s schema) |
//! | `create_table` | `on` | create the table if it is missing; `off`: a missing table is an error naming it |
//! | `lock` | `on` | one request at a time per session; `off`: last write wins |
//! | `lock_wait` | `10s` | longest wait for a session's lock; then 503 |
//! | `timeout` | `2s` | longest wait for any one statement; then 503 |
//! | `pool_size` | `10` | most connections nene opens to the database |
//! | `acquire_timeout` | `1s` | longest wait for a free pooled connection (or a new one); then 503 |
//!
//! MySQL/MariaDB and PostgreSQL DSNs also take TLS options under each
//! database's own names (`dsn_tls.rs`): `sslmode`, `sslrootcert`,
//! `sslcert`, `sslkey` (PostgreSQL); `ssl-mode`, `ssl-ca`, `ssl-cert`,
//! `ssl-key` (MySQL).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::dsn_tls::{self, SqlTls};
use crate::session::backend::DEFAULT_LOCK_WAIT;
use crate::session::backend::dsn::{
    DsnError, Parser, SessionBackend, did_you_mean, is_secret_name, percent_decode, port_number,
};

/// The schemes of SQL DSNs, for the factory's table.
pub(crate) const SCHEMES: &[&str] = &["sqlite", "mysql", "mariadb", "postgres", "postgresql"];

/// The forms the start-up error lists as accepted.
pub(crate) const FORMS: &[&str] = &[
    "sqlite://relative/path.db or sqlite:///absolute/path.db[?options]",
    "mysql://user:password@host[:port]/database[?options] (or mariadb://)",
    "postgres://user:password@host[:port]/database[?options] (or postgresql://)",
];

/// Options every SQL DSN takes.
const OPTIONS: &[&str] = &[
    "table",
    "create_table",
    "lock",
    "lock_wait",
    "timeout",
    "pool_size",
    "acquire_timeout",
];

/// The most connections `pool_size` allows: more is surely a typo, and
/// a database's own limit (MySQL 151, PostgreSQL 100 by default) is
/// shared by every instance.
const MAX_POOL_SIZE: u32 = 1000;

/// Which database engine a SQL DSN names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlDriver {
    /// A SQLite file.
    Sqlite,
    /// A MySQL or MariaDB server.
    MySql,
    /// A PostgreSQL server.
    Postgres,
}

/// Where the sessions table is: a file, or a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlAddress {
    /// A SQLite database file (relative to the working directory unless absolute).
    File {
        /// The path as written, percent-decoded.
        path: PathBuf,
    },
    /// A MySQL, MariaDB or PostgreSQL server.
    Server {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// The user to log in as.
        username: Option<String>,
        /// The database (schema, for MySQL) holding the table.
        database: String,
    },
}

/// A parsed SQL session DSN.
#[derive(Clone, PartialEq, Eq)]
pub struct SqlDsn {
    /// The engine, which picks the SQL dialect and the locking.
    pub driver: SqlDriver,
    /// Where the database is.
    pub address: SqlAddress,
    /// The login password. Private so that it cannot leak through a field
    /// access in a log line; [`SqlDsn::password`] hands it to the client.
    password: Option<String>,
    /// The query options.
    pub options: SqlOptions,
}

/// The options of the table in this module's documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlOptions {
    /// The sessions table's name (letters, digits, `_`).
    pub table: String,
    /// Whether a missing table is created (with Symfony's DDL).
    pub create_table: bool,
    /// Whether requests of one session take turns.
    pub lock: bool,
    /// How long a request waits for a session's lock.
    pub lock_wait: Duration,
    /// Bound on every statement.
    pub timeout: Duration,
    /// Most connections in the pool.
    pub pool_size: u32,
    /// Bound on getting a connection from the pool.
    pub acquire_timeout: Duration,
    /// TLS to a server (MySQL/MariaDB, PostgreSQL).
    pub(crate) tls: SqlTls,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            table: "sessions".to_string(),
            create_table: true,
            lock: true,
            lock_wait: DEFAULT_LOCK_WAIT,
            // A session statement is a primary-key lookup or upsert taking
            // a millisecond; 2 s leaves room for a busy server, not a stall.
            timeout: Duration::from_secs(2),
            // With locking on, every request in flight on a distinct session
            // holds one connection from lock to save: 10 serves 10 sessions'
            // requests at once per instance and stays far below a server's
            // own limit when several instances share it.
            pool_size: 10,
            // Short: a pool with no free connection is an overload, and a
            // quick 503 beats a queue of requests that time out anyway.
            acquire_timeout: Duration::from_secs(1),
            tls: SqlTls::default(),
        }
    }
}

impl SqlDsn {
    /// The login password, for the client only: never log it.
    #[cfg_attr(not(any(feature = "mysql", feature = "postgres")), allow(dead_code))]
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl fmt::Debug for SqlDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlDsn")
            .field("driver", &self.driver)
            .field("address", &self.address)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("options", &self.options)
            .finish()
    }
}

/// Parses what follows the scheme of a SQL DSN (`scheme` lowercased): the
/// factory's parser for SQL.
pub(crate) fn parse(
    parser: &Parser<'_>,
    scheme: &str,
    rest: &str,
) -> Result<SessionBackend, DsnError> {
    let driver = match scheme {
        "sqlite" => SqlDriver::Sqlite,
        "mysql" | "mariadb" => SqlDriver::MySql,
        _ => SqlDriver::Postgres,
    };
    Ok(SessionBackend::Sql(Box::new(parser.sql(driver, rest)?)))
}

impl Parser<'_> {
    /// `sqlite://path` or `driver://[user[:password]@]host[:port]/database`,
    /// with `?options`.
    fn sql(&self, driver: SqlDriver, rest: &str) -> Result<SqlDsn, DsnError> {
        let (location, query) = self.split_query(rest)?;
        let (address, password) = match driver {
            SqlDriver::Sqlite => {
                let path = percent_decode(location)
                    .ok_or_else(|| self.malformed("broken percent-encoding in the path"))?;
                if path.is_empty() || path == "/" {
                    return Err(self.malformed(
                        "no file: write sqlite://relative/path.db or sqlite:///absolute/path.db",
                    ));
                }
                let path = PathBuf::from(path);
                (SqlAddress::File { path }, None)
            }
            SqlDriver::MySql | SqlDriver::Postgres => {
                // An `@` after the host means a password with an unencoded
                // `/` or `?`: say so without echoing any part of what
                // follows, which may be the rest of the password.
                let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
                if rest[authority_end..].contains('@') {
                    return Err(self.malformed(
                        "an `@` after the host: percent-encode reserved characters in the password \
                         (`/` → %2F, `?` → %3F, `#` → %23, `@` → %40)",
                    ));
                }
                server(location, driver).map_err(|problem| self.malformed(problem))?
            }
        };
        let mut options = SqlOptions::default();
        self.sql_options(driver, query, &mut options)?;
        Ok(SqlDsn {
            driver,
            address,
            password,
            options,
        })
    }

    /// Applies `key=value&…` to `options`.
    fn sql_options(
        &self,
        driver: SqlDriver,
        query: &str,
        options: &mut SqlOptions,
    ) -> Result<(), DsnError> {
        let tls_names = dsn_tls::option_names(driver);
        let known = |key: &str| OPTIONS.contains(&key) || tls_names.contains(&key);
        let unknown = |key: &str| self.unknown_sql_option(driver, key);
        for (key, value) in self.option_pairs(query, known, unknown)? {
            match key.as_str() {
                "table" => options.table = self.table_name(value)?,
                "create_table" => options.create_table = self.on_off("create_table", &value)?,
                "lock" => options.lock = self.on_off("lock", &value)?,
                "lock_wait" => options.lock_wait = self.duration("lock_wait", &value, true)?,
                "timeout" => options.timeout = self.duration("timeout", &value, false)?,
                "acquire_timeout" => {
                    options.acquire_timeout = self.duration("acquire_timeout", &value, false)?;
                }
                "pool_size" => {
                    options.pool_size = value
                        .parse::<u32>()
                        .ok()
                        .filter(|size| (1..=MAX_POOL_SIZE).contains(size))
                        .ok_or_else(|| {
                            self.bad_value(
                                "pool_size",
                                &value,
                                "a number of connections from 1 to 1000",
                            )
                        })?;
                }
                _ => match dsn_tls::apply(driver, &key, &value, &mut options.tls) {
                    Some(applied) => applied
                        .map_err(|(option, expected)| self.bad_value(option, &value, expected))?,
                    None if is_secret_name(&key) => {
                        return Err(self.malformed(format!(
                            "option `{key}`: the password goes before the host (mysql://user:password@host/db)"
                        )));
                    }
                    None => return Err(self.unknown_sql_option(driver, &key)),
                },
            }
        }
        Ok(())
    }

    /// The `table` option: interpolated into SQL, so a plain identifier only.
    fn table_name(&self, value: String) -> Result<String, DsnError> {
        if value.len() > 64
            || value.starts_with(|c: char| c.is_ascii_digit())
            || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(self.bad_value(
                "table",
                &value,
                "a table name of letters, digits and `_` (at most 64, not starting with a digit)",
            ));
        }
        Ok(value)
    }

    fn unknown_sql_option(&self, driver: SqlDriver, key: &str) -> DsnError {
        let accepted: Vec<&str> = OPTIONS
            .iter()
            .chain(dsn_tls::option_names(driver))
            .copied()
            .collect();
        DsnError::UnknownOption {
            dsn: self.dsn.to_string(),
            option: key.to_string(),
            hint: did_you_mean(key, &accepted),
            accepted: accepted.join(", "),
        }
    }
}

/// `[user[:password]@]host[:port]/database`.
fn server(location: &str, driver: SqlDriver) -> Result<(SqlAddress, Option<String>), String> {
    let (authority, database) = location
        .split_once('/')
        .ok_or("no database: write …@host[:port]/database")?;
    let database = percent_decode(database).ok_or("broken percent-encoding in the database")?;
    if database.is_empty() || database.contains('/') {
        return Err(format!(
            "`{database}` is not a database name: write …@host[:port]/database"
        ));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let user = percent_decode(user).ok_or("broken percent-encoding in the user name")?;
            let password = password
                .map(|password| {
                    percent_decode(password).ok_or("broken percent-encoding in the password")
                })
                .transpose()?;
            ((!user.is_empty()).then_some(user), password)
        }
    };
    let default_port = match driver {
        SqlDriver::MySql => 3306,
        _ => 5432,
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 host without its closing `]`")?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
    {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let port = match port {
        None => default_port,
        Some(port) => port_number(port)?,
    };
    Ok((
        SqlAddress::Server {
            host: host.to_string(),
            port,
            username,
            database,
        },
        password,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::backend::dsn::SessionDsn;
    use crate::session::backend::dsn::tests::{parsed, refusal};

    fn sql(text: &str) -> SqlDsn {
        parsed(text).sql().cloned().expect("a SQL DSN")
    }

    #[test]
    fn sqlite_paths_are_relative_or_absolute() {
        let relative = sql("sqlite://var/sessions.db");
        assert_eq!(relative.driver, SqlDriver::Sqlite);
        assert_eq!(
            relative.address,
            SqlAddress::File {
                path: PathBuf::from("var/sessions.db")
            }
        );
        assert_eq!(relative.options, SqlOptions::default());
        let absolute = sql("SQLITE:///tmp/a%20b.db");
        assert_eq!(
            absolute.address,
            SqlAddress::File {
                path: PathBuf::from("/tmp/a b.db")
            }
        );
        assert!(refusal("sqlite://").contains("no file"));
        assert!(refusal("sqlite:///").contains("no file"));
    }

    #[test]
    fn every_scheme_spelling_picks_its_driver_and_default_port() {
        for (text, driver, port) in [
            ("mysql://u:p@db/app", SqlDriver::MySql, 3306),
            ("mariadb://u:p@db/app", SqlDriver::MySql, 3306),
            ("postgres://u:p@db/app", SqlDriver::Postgres, 5432),
            ("postgresql://u:p@db:6543/app", SqlDriver::Postgres, 6543),
        ] {
            let dsn = sql(text);
            assert_eq!(dsn.driver, driver, "{text}");
            assert_eq!(
                dsn.address,
                SqlAddress::Server {
                    host: "db".into(),
                    port,
                    username: Some("u".into()),
                    database: "app".into()
                },
                "{text}"
            );
            assert_eq!(dsn.password(), Some("p"));
        }
    }

    #[test]
    fn the_password_is_decoded_for_the_client_and_never_shown() {
        let text = "mysql://app:s%40cret%2Fpw@127.0.0.1:3307/sessions?table=bogus-";
        let message = refusal(text);
        assert!(
            !message.contains("s%40cret") && !message.contains("s@cret"),
            "{message}"
        );
        let dsn = sql("postgres://app:s%40cret@[::1]:5433/db");
        assert_eq!(dsn.password(), Some("s@cret"));
        assert!(!format!("{dsn:?}").contains("cret"));
        let parsed = SessionDsn::parse("postgres://app:s%40cret@[::1]:5433/db").unwrap();
        assert!(!parsed.redacted().contains("cret"), "{}", parsed.redacted());
        assert!(!format!("{parsed:?}").contains("cret"));
        // A user without a password (peer or trust authentication).
        assert_eq!(sql("postgres://app@db/x").password(), None);
    }

    #[test]
    fn options_are_read_and_checked() {
        let dsn = sql(
            "mysql://u:p@h/d?table=php_sessions&create_table=off&lock=off&lock_wait=0s&timeout=250ms&pool_size=3&acquire_timeout=2s",
        );
        assert_eq!(
            dsn.options,
            SqlOptions {
                table: "php_sessions".into(),
                create_table: false,
                lock: false,
                lock_wait: Duration::ZERO,
                timeout: Duration::from_millis(250),
                pool_size: 3,
                acquire_timeout: Duration::from_secs(2),
                tls: SqlTls::default(),
            }
        );
    }

    #[test]
    fn tls_options_go_by_each_databases_own_names() {
        let postgres = sql("postgres://u:p@db/d?sslmode=verify-full&sslrootcert=/etc/ca.pem");
        assert_eq!(
            postgres.options.tls.mode,
            super::dsn_tls::SqlTlsMode::VerifyFull
        );
        assert_eq!(
            postgres.options.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        let mysql = sql("mariadb://u:p@db/d?ssl-mode=REQUIRED&ssl-ca=/etc/ca.pem");
        assert_eq!(mysql.options.tls.mode, super::dsn_tls::SqlTlsMode::Require);
        // The other database's name is unknown, with the right one offered.
        let message = refusal("postgres://u:p@db/d?ssl-mode=require");
        assert!(message.contains("unknown option `ssl-mode`"), "{message}");
        assert!(message.contains("did you mean `sslmode`"), "{message}");
        let message = refusal("mysql://u:p@db/d?sslmode=REQUIRED");
        assert!(message.contains("did you mean `ssl-mode`"), "{message}");
        // SQLite has no TLS.
        assert!(refusal("sqlite://s.db?sslmode=require").contains("unknown option"));
        let message = refusal("postgres://u:p@db/d?sslmode=always");
        assert!(message.contains("verify-full"), "{message}");
    }

    #[test]
    fn an_unknown_option_suggests_the_closest() {
        let message = refusal("sqlite://s.db?tabel=x");
        assert!(message.contains("unknown option `tabel`"), "{message}");
        assert!(message.contains("did you mean `table`"), "{message}");
        assert!(message.contains("pool_size"), "{message}");
    }

    #[test]
    fn bad_values_are_refused_with_what_is_expected() {
        for (text, option) in [
            ("sqlite://s.db?timeout=soon", "timeout"),
            ("sqlite://s.db?timeout=0s", "timeout"),
            ("sqlite://s.db?lock_wait=2d", "lock_wait"),
            ("sqlite://s.db?acquire_timeout=-1s", "acquire_timeout"),
            ("sqlite://s.db?lock=maybe", "lock"),
            ("sqlite://s.db?create_table=sometimes", "create_table"),
            ("sqlite://s.db?pool_size=0", "pool_size"),
            ("sqlite://s.db?pool_size=many", "pool_size"),
            ("sqlite://s.db?table=a;drop", "table"),
            ("sqlite://s.db?table=1abc", "table"),
        ] {
            let message = refusal(text);
            assert!(
                message.contains(&format!("option `{option}` must be")),
                "{text}: {message}"
            );
        }
        assert!(refusal("sqlite://s.db?lock=on&lock=off").contains("given twice"));
        assert!(refusal("sqlite://s.db?timeout=").contains("has no value"));
        assert!(refusal("mysql://u:p@h/d?password=x").contains("goes before the host"));
    }

    #[test]
    fn a_password_with_an_unencoded_slash_or_question_mark_is_never_echoed() {
        for text in [
            "mysql://app:Zq8/Kt3pXw9@db.internal/shop",
            "postgres://app:Zq8?Kt3pXw9@db.internal/shop",
            "mariadb://app:Zq8/Kt3/pXw9@db.internal:3307/shop?table=s",
        ] {
            let message = refusal(text);
            assert!(!message.contains("Kt3"), "{message}");
            assert!(!message.contains("Zq8"), "{message}");
            assert!(message.contains("%2F"), "{message}");
        }
    }

    #[test]
    fn a_server_dsn_needs_a_host_and_a_database() {
        assert!(refusal("mysql://u:p@h").contains("no database"));
        assert!(refusal("mysql://u:p@h/").contains("not a database name"));
        assert!(refusal("postgres://u:p@/db").contains("not a host name"));
        assert!(refusal("postgres://u:p@h:99999/db").contains("port `99999`"));
        assert!(refusal("mariadb://u:p@h/d#x").contains("fragment"));
    }

    #[test]
    fn a_misspelt_scheme_suggests_a_sql_one() {
        let message = refusal("postgre://u:p@h/d");
        assert!(message.contains("did you mean `postgres`"), "{message}");
        assert!(message.contains("sqlite://"), "{message}");
    }
}
