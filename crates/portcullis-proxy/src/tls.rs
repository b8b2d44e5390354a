//! rustls configuration for listeners and upstreams: TLS 1.2 and 1.3 only, ring provider.

use std::sync::Arc;

use portcullis_config::{ConfigError, Tls, UpstreamTls};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

fn error(path: &str, message: String) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        message,
    }
}

/// Builds the listener config from the certificate chain and key. ALPN offers h2 then
/// http/1.1.
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let certs: Vec<CertificateDer<'static>> =
        match CertificateDer::pem_slice_iter(&tls.cert_pem).collect() {
            Ok(certs) => certs,
            Err(err) => {
                errors.push(error(
                    "gateway.tls.cert",
                    format!("\"{}\" is not valid PEM: {err}", tls.cert_path.display()),
                ));
                Vec::new()
            }
        };
    if certs.is_empty() && errors.is_empty() {
        errors.push(error(
            "gateway.tls.cert",
            format!(
                "\"{}\" holds no certificate (expected \"-----BEGIN CERTIFICATE-----\")",
                tls.cert_path.display()
            ),
        ));
    }
    let key = match PrivateKeyDer::from_pem_slice(tls.key_pem.expose()) {
        Ok(key) => Some(key),
        Err(_) => {
            errors.push(error(
                "gateway.tls.key",
                format!(
                    "\"{}\" holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    tls.key_path.display()
                ),
            ));
            None
        }
    };
    let Some(key) = key.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    let builder = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| vec![error("gateway.tls", format!("TLS setup failed: {err}"))])?;
    let mut config = builder
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| {
            vec![error(
                "gateway.tls.key",
                format!("the key does not fit the certificate: {err}"),
            )]
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Builds the client config for an upstream: only the configured CA is trusted.
pub fn upstream_client_config(tls: &UpstreamTls, path: &str) -> Result<ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&tls.ca_pem)
        .collect::<Result<_, _>>()
        .map_err(|err| {
            error(
                path,
                format!("\"{}\" is not valid PEM: {err}", tls.ca_path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(error(
            path,
            format!("\"{}\" holds no certificate", tls.ca_path.display()),
        ));
    }
    for cert in certs {
        roots.add(cert).map_err(|err| {
            error(
                path,
                format!(
                    "\"{}\": unusable CA certificate: {err}",
                    tls.ca_path.display()
                ),
            )
        })?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| error(path, format!("TLS setup failed: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
