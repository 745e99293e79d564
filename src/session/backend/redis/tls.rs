//! TLS for `rediss://`, `rediss+sentinel://` and `rediss+cluster://`, with
//! nene's `redis-tls` feature (rustls with ring, and the public roots: about
//! a dozen crates an application without TLS to Redis need not compile).
//!
//! Without the feature, [`TlsConfig`] is a type with no values: every
//! `Option<TlsConfig>` is `None`, and the code that would use one compiles
//! to nothing. The factory refuses a `rediss` DSN first, naming the feature
//! (factory.rs).

use std::io;

use tokio::net::TcpStream;

use super::endpoint::Stream;

/// The TLS settings every connection of a `rediss` DSN uses.
#[cfg(feature = "redis-tls")]
pub(super) type TlsConfig = std::sync::Arc<rustls::ClientConfig>;

/// No TLS in this build: no value of this type exists.
#[cfg(not(feature = "redis-tls"))]
#[derive(Clone)]
pub(super) enum TlsConfig {}

/// The TLS settings for `rediss://`: the CA in `ca_pem` (the DSN's
/// `tls_ca_file`) alone when given, as the redis crate does, else the
/// public roots.
#[cfg(feature = "redis-tls")]
pub(super) fn tls_config(ca_pem: Option<&[u8]>) -> Result<TlsConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    // The redis crate leaves the choice of rustls' crypto to the
    // application; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for certificate in CertificateDer::pem_slice_iter(pem) {
                let certificate = certificate.map_err(|error| format!("tls_ca_file: {error}"))?;
                roots
                    .add(certificate)
                    .map_err(|error| format!("tls_ca_file: {error}"))?;
            }
            if roots.is_empty() {
                return Err("tls_ca_file holds no certificate".to_string());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Never reached: the factory refuses a `rediss` DSN in this build.
#[cfg(not(feature = "redis-tls"))]
pub(super) fn tls_config(_ca_pem: Option<&[u8]>) -> Result<TlsConfig, String> {
    Err("this build has no TLS for Redis (nene's `redis-tls` feature)".to_string())
}

/// `tcp`, to the server named `host`, turned into a TLS stream that has
/// verified the server's certificate for that name.
#[cfg(feature = "redis-tls")]
pub(super) async fn over_tls(
    config: &TlsConfig,
    host: &str,
    tcp: TcpStream,
) -> io::Result<Box<dyn Stream>> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    Ok(Box::new(connector.connect(name, tcp).await?))
}

#[cfg(not(feature = "redis-tls"))]
pub(super) async fn over_tls(
    config: &TlsConfig,
    _host: &str,
    _tcp: TcpStream,
) -> io::Result<Box<dyn Stream>> {
    match *config {}
}
