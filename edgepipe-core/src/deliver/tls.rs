//! The rustls client configuration the broker sinks (MQTT, NATS, Kafka) share:
//! the platform's trust roots and/or extra CA certificates, TLS 1.2 and 1.3 on
//! the ring provider.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::{Error, Result};

/// A client configuration trusting the platform's roots (`native_roots`) and
/// the PEM certificates in `extra_ca_pem`; `key` (e.g. `mqtt.tls`) names the
/// setting in errors. No trust root at all is an error.
pub(crate) fn client_config(
    key: &str,
    native_roots: bool,
    extra_ca_pem: Option<&[u8]>,
) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if native_roots {
        // Unreadable platform certificates are skipped, as browsers do; the store
        // being empty in the end is the error that matters.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(pem) = extra_ca_pem {
        let extra_key = format!("{key}.extra_ca_pem");
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|error| config(&extra_key, error))?;
            roots.add(cert).map_err(|error| config(&extra_key, error))?;
        }
    }
    if roots.is_empty() {
        return Err(config(
            key,
            "no trust roots: enable native_roots or give extra_ca_pem",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| config(key, error))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn config(key: &str, message: impl std::fmt::Display) -> Error {
    Error::config(key, message.to_string())
}
