//! TLS to a MySQL/MariaDB or PostgreSQL session database, set in the DSN
//! under each database's own client names, with their meanings: PostgreSQL's
//! libpq `sslmode` (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
//! `verify-full`), `sslrootcert`, `sslcert`, `sslkey`; MySQL's client
//! `ssl-mode` (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`,
//! `VERIFY_IDENTITY`), `ssl-ca`, `ssl-cert`, `ssl-key`. These are also the
//! names sqlx reads from a URL, so a DSN copied from a PHP or Rust
//! application means the same here.
//!
//! The default is both clients' own, `prefer`: TLS when the server offers
//! it, unverified. A password sent that way to a server that is not on this
//! machine is warned about at start-up (`sql/tls.rs`, decision 0023): a
//! server in the middle can decline TLS and read it.

use std::path::PathBuf;

use super::dsn::SqlDriver;

/// How far the connection to the database is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SqlTlsMode {
    /// Never TLS.
    Disable,
    /// Plain first, TLS if the server insists (PostgreSQL only).
    Allow,
    /// TLS when the server offers it, without checking who it is.
    #[default]
    Prefer,
    /// TLS or no connection, without checking who the server is.
    Require,
    /// TLS with a certificate signed by the CA (`sslrootcert` / `ssl-ca`).
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host of the DSN.
    VerifyFull,
}

// Read by the SQL backend, which a build without any SQL feature leaves out.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "mysql", feature = "postgres")),
    allow(dead_code)
)]
impl SqlTlsMode {
    /// Whether the server is known to be the one meant: only then is a
    /// password safe from a server in the middle.
    pub(crate) fn verifies_server(self) -> bool {
        self >= SqlTlsMode::VerifyCa
    }

    /// The mode as the DSN's driver spells it, for messages.
    pub(crate) fn name(self, driver: SqlDriver) -> &'static str {
        let postgres = driver == SqlDriver::Postgres;
        match self {
            SqlTlsMode::Disable if postgres => "sslmode=disable",
            SqlTlsMode::Disable => "ssl-mode=DISABLED",
            SqlTlsMode::Allow => "sslmode=allow",
            SqlTlsMode::Prefer if postgres => "sslmode=prefer",
            SqlTlsMode::Prefer => "ssl-mode=PREFERRED",
            SqlTlsMode::Require if postgres => "sslmode=require",
            SqlTlsMode::Require => "ssl-mode=REQUIRED",
            SqlTlsMode::VerifyCa if postgres => "sslmode=verify-ca",
            SqlTlsMode::VerifyCa => "ssl-mode=VERIFY_CA",
            SqlTlsMode::VerifyFull if postgres => "sslmode=verify-full",
            SqlTlsMode::VerifyFull => "ssl-mode=VERIFY_IDENTITY",
        }
    }
}

/// The TLS options of a server DSN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SqlTls {
    /// `sslmode` / `ssl-mode`.
    pub mode: SqlTlsMode,
    /// The CA that signed the server's certificate (PEM): `sslrootcert` /
    /// `ssl-ca`. Without it, the system's public roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for servers that ask for one:
    /// `sslcert` / `ssl-cert`.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM): `sslkey` / `ssl-key`.
    pub key_file: Option<PathBuf>,
}

/// PostgreSQL's option names, as libpq has them.
pub(super) const POSTGRES_OPTIONS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];
/// MySQL's option names, as its client has them.
pub(super) const MYSQL_OPTIONS: &[&str] = &["ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"];

/// The TLS option names `driver` takes (none for SQLite).
pub(super) fn option_names(driver: SqlDriver) -> &'static [&'static str] {
    match driver {
        SqlDriver::Postgres => POSTGRES_OPTIONS,
        SqlDriver::MySql => MYSQL_OPTIONS,
        SqlDriver::Sqlite => &[],
    }
}

/// A TLS option value the driver does not take: the option's name and
/// what it takes, in words.
pub(super) type BadValue = (&'static str, &'static str);

/// Sets option `key` to `value` in `tls`. `None` when `key` is not one of
/// `driver`'s TLS options.
pub(super) fn apply(
    driver: SqlDriver,
    key: &str,
    value: &str,
    tls: &mut SqlTls,
) -> Option<Result<(), BadValue>> {
    let names = option_names(driver);
    let index = names.iter().position(|name| *name == key)?;
    let name = names[index];
    let file = || {
        if value.is_empty() {
            Err((name, "the path of a PEM file"))
        } else {
            Ok(Some(PathBuf::from(value)))
        }
    };
    Some(match index {
        0 => mode(driver, value).map(|mode| tls.mode = mode),
        1 => file().map(|path| tls.ca_file = path),
        2 => file().map(|path| tls.cert_file = path),
        _ => file().map(|path| tls.key_file = path),
    })
}

fn mode(driver: SqlDriver, value: &str) -> Result<SqlTlsMode, BadValue> {
    if driver == SqlDriver::Postgres {
        return match value {
            "disable" => Ok(SqlTlsMode::Disable),
            "allow" => Ok(SqlTlsMode::Allow),
            "prefer" => Ok(SqlTlsMode::Prefer),
            "require" => Ok(SqlTlsMode::Require),
            "verify-ca" => Ok(SqlTlsMode::VerifyCa),
            "verify-full" => Ok(SqlTlsMode::VerifyFull),
            _ => Err((
                "sslmode",
                "disable, allow, prefer, require, verify-ca or verify-full",
            )),
        };
    }
    // MySQL's client takes its values in any case.
    match value.to_ascii_uppercase().as_str() {
        "DISABLED" => Ok(SqlTlsMode::Disable),
        "PREFERRED" => Ok(SqlTlsMode::Prefer),
        "REQUIRED" => Ok(SqlTlsMode::Require),
        "VERIFY_CA" => Ok(SqlTlsMode::VerifyCa),
        "VERIFY_IDENTITY" => Ok(SqlTlsMode::VerifyFull),
        _ => Err((
            "ssl-mode",
            "DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_database_takes_its_own_names_and_values() {
        let mut tls = SqlTls::default();
        assert_eq!(tls.mode, SqlTlsMode::Prefer);
        assert_eq!(
            apply(SqlDriver::Postgres, "sslmode", "verify-full", &mut tls),
            Some(Ok(()))
        );
        assert_eq!(tls.mode, SqlTlsMode::VerifyFull);
        assert_eq!(
            apply(SqlDriver::Postgres, "sslrootcert", "/ca.pem", &mut tls),
            Some(Ok(()))
        );
        assert_eq!(tls.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            apply(SqlDriver::MySql, "ssl-mode", "verify_identity", &mut tls),
            Some(Ok(()))
        );
        assert_eq!(tls.mode, SqlTlsMode::VerifyFull);
        // The other database's names are not TLS options here.
        for (driver, option, value) in [
            (SqlDriver::MySql, "sslmode", "require"),
            (SqlDriver::Postgres, "ssl-mode", "REQUIRED"),
            (SqlDriver::Sqlite, "sslmode", "require"),
        ] {
            assert_eq!(apply(driver, option, value, &mut tls), None, "{option}");
        }
        // MySQL has no `allow`; libpq's values are lower case.
        for (driver, option, value) in [
            (SqlDriver::MySql, "ssl-mode", "allow"),
            (SqlDriver::Postgres, "sslmode", "REQUIRE"),
            (SqlDriver::Postgres, "sslcert", ""),
        ] {
            let refused = apply(driver, option, value, &mut tls);
            assert!(
                matches!(refused, Some(Err((named, _))) if named == option),
                "{option}={value}"
            );
        }
    }

    #[test]
    fn only_the_verifying_modes_protect_a_password() {
        for mode in [
            SqlTlsMode::Disable,
            SqlTlsMode::Allow,
            SqlTlsMode::Prefer,
            SqlTlsMode::Require,
        ] {
            assert!(!mode.verifies_server(), "{mode:?}");
        }
        assert!(SqlTlsMode::VerifyCa.verifies_server());
        assert!(SqlTlsMode::VerifyFull.verifies_server());
    }
}
