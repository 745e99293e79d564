//! Start-up checks of a server DSN's TLS options (`dsn_tls.rs`): the
//! certificate and key files it names can be read (sqlx reads them only at
//! the first connection, which would turn a typo into a 503 on the first
//! request), and a warning when the password would go to another machine
//! over a connection that does not verify the server.

use std::net::IpAddr;

use super::dsn::{SqlAddress, SqlDriver, SqlDsn};
use super::dsn_tls::SqlTlsMode;

use super::SqlSetupError;

/// Checks `sql`'s TLS files; warns when its password is exposed. `redacted`
/// is the DSN as messages show it.
pub(super) fn check(sql: &SqlDsn, redacted: &str) -> Result<(), SqlSetupError> {
    let SqlAddress::Server { host, .. } = &sql.address else {
        return Ok(());
    };
    let tls = &sql.options.tls;
    for (option, file) in [
        ("CA", &tls.ca_file),
        ("client certificate", &tls.cert_file),
        ("client key", &tls.key_file),
    ] {
        if let Some(path) = file
            && let Err(error) = std::fs::File::open(path)
        {
            return Err(SqlSetupError::TlsFile {
                dsn: redacted.to_string(),
                what: option,
                path: path.display().to_string(),
                reason: error.to_string(),
            });
        }
    }
    if sql.password().is_some() && !is_this_machine(host) && !tls.mode.verifies_server() {
        tracing::warn!(
            "SESSION_DSN `{redacted}`: the database password goes to {host} over a connection that does not verify the server ({}): a server in the middle could decline TLS or present any certificate and read it. Set {} with the server's CA ({})",
            tls.mode.name(sql.driver),
            SqlTlsMode::VerifyFull.name(sql.driver),
            if sql.driver == SqlDriver::Postgres {
                "sslrootcert=/path/ca.pem"
            } else {
                "ssl-ca=/path/ca.pem"
            }
        );
    }
    Ok(())
}

/// Whether `host` is this machine: a loopback address or `localhost`.
fn is_this_machine(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_localhost_are_this_machine() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(is_this_machine(host), "{host}");
        }
        for host in [
            "db.internal",
            "10.0.0.5",
            "192.0.2.1",
            "::2",
            "localhost.example",
        ] {
            assert!(!is_this_machine(host), "{host}");
        }
    }
}
