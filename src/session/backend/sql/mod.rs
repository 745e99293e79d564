//! Sessions in a SQL table: SQLite (`sqlite://path`), MySQL or MariaDB
//! (`mysql://…`, `mariadb://…`) and PostgreSQL (`postgres://…`), through
//! sqlx. The table is Symfony `PdoSessionHandler`'s (`schema.rs`), so a PHP
//! application can share it; locks are per driver (`lock.rs`); the pool is
//! bounded and every statement is bounded in time (`pool.rs`).
//!
//! The pool opens connections on first use, so nene starts while the
//! database is down; the table is created (or, with `create_table=off`,
//! looked for) at first use and again after a failure. A full pool, a
//! database that does not answer, and a missing table are errors (503),
//! never a hang.
//!
//! Each driver is a Cargo feature. The DSN (`dsn.rs`, `dsn_tls.rs`) is
//! parsed in every build, so that a DSN for a driver this build left out
//! names its feature; the rest exists when one driver is on.

// With only some drivers compiled in, a lock's id and wait go unused by the
// one that is (SQLite's lock is a transaction), and a match on the pool
// has one arm.
#![cfg_attr(
    not(all(feature = "sqlite", feature = "mysql", feature = "postgres")),
    allow(unused_variables, irrefutable_let_patterns)
)]

use std::sync::Arc;

use crate::session::SessionSettings;
use crate::session::backend::dsn::SessionDsn;
use crate::session::backend::factory::{BackendKind, Opened, SessionSetupError};

mod dsn;
mod dsn_tls;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
mod handler;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
mod lock;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
mod pool;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
mod schema;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
mod sqlite_file;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
mod tls;

pub use dsn::{SqlAddress, SqlDriver, SqlDsn, SqlOptions};
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
use handler::backend_name;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
pub use handler::{SqlSessionHandler, SqlSetupError};

/// The factory's row for SQL.
pub(crate) const KIND: BackendKind = BackendKind::new(dsn::SCHEMES, dsn::FORMS, dsn::parse, open);

/// The SQL backend, when this build has the DSN's driver.
fn open(parsed: &SessionDsn, settings: &SessionSettings) -> Opened {
    let driver = parsed.sql().map(|sql| sql.driver);
    let missing = match driver {
        Some(SqlDriver::Sqlite) if !cfg!(feature = "sqlite") => Some("sqlite"),
        Some(SqlDriver::MySql) if !cfg!(feature = "mysql") => Some("mysql"),
        Some(SqlDriver::Postgres) if !cfg!(feature = "postgres") => Some("postgres"),
        _ => None,
    };
    if let Some(feature) = missing {
        return Err(SessionSetupError::not_compiled(parsed, "SQL", feature));
    }
    compiled(parsed, settings)
}

#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
fn compiled(parsed: &SessionDsn, settings: &SessionSettings) -> Opened {
    Ok(Arc::new(
        SqlSessionHandler::new(parsed, settings.lifetime())?.with_max_size(settings.max_size),
    ))
}

#[cfg(not(any(feature = "sqlite", feature = "mysql", feature = "postgres")))]
fn compiled(_parsed: &SessionDsn, _settings: &SessionSettings) -> Opened {
    unreachable!("`open` refuses every driver when no SQL feature is on")
}
