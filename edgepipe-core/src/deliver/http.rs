//! The HTTP sink: `POST {endpoint}/api/ingest`, the seed's protocol with
//! edgepipe's optional extension headers (feature `http`).
//!
//! The protocol is described in `docs/delivery.md`; in short, the body is the
//! batch's payload as it is held (compressed), the seed's headers `X-API-Key`,
//! `X-Batch-ID`, `Content-Encoding` and `Content-Type` are always sent, and the
//! `X-Edgepipe-*` headers (codec, checksum, source, record count, sequence range,
//! creation time, HMAC signature) are added unless the sink is in seed-compatible
//! mode.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::retry::{SendFailure, parse_retry_after_at};
use super::sink::{Delivered, Sink};
use crate::batch::{Batch, Codec, Compression, signature};
use crate::error::{Error, Result};
use crate::record::Timestamp;

/// The path every batch is posted to, below the endpoint.
pub const INGEST_PATH: &str = "/api/ingest";

/// How an [`HttpSink`] is set up. Built with [`HttpSinkOptions::new`] and the
/// `with_*` methods; every field is public for configuration files.
///
/// `Debug` shows neither the API key nor the HMAC key.
#[derive(Clone)]
pub struct HttpSinkOptions {
    /// Base URL of the ingest service, `http://` or `https://`, e.g.
    /// `https://ingest.example.com` (batches go to `{endpoint}/api/ingest`).
    pub endpoint: String,
    /// Sent as `X-API-Key`.
    pub api_key: String,
    /// The whole exchange, connecting included, must finish within this; the
    /// seed's client allows 60 s.
    pub request_timeout: Duration,
    /// Resolving and connecting (TCP and TLS handshake) must finish within this.
    pub connect_timeout: Duration,
    /// When set, every request carries `X-Edgepipe-Signature`, an HMAC-SHA256 of
    /// the batch id and the body under this key.
    pub hmac_key: Option<Vec<u8>>,
    /// PEM text of CA certificates trusted besides Mozilla's roots (a
    /// self-signed deployment's own CA or certificate); several may be
    /// concatenated.
    pub ca_certificates_pem: Vec<u8>,
    /// Send only the seed's headers, and refuse (as a permanent failure) a batch
    /// the seed's FastAPI service cannot read: a codec other than `json` or
    /// `json-python`, or lz4/zstd compression.
    pub seed_compatible: bool,
    /// Response bodies are read up to this many bytes; the rest is ignored (a
    /// protocol answer is a few hundred bytes).
    pub max_response_bytes: usize,
}

impl fmt::Debug for HttpSinkOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HttpSinkOptions")
            .field("endpoint", &redact_userinfo(&self.endpoint))
            .field("api_key", &"<redacted>")
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .field("ca_certificates_pem_bytes", &self.ca_certificates_pem.len())
            .field("seed_compatible", &self.seed_compatible)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl HttpSinkOptions {
    /// Options for `endpoint` with `api_key`: 60 s request timeout (the seed's),
    /// 10 s connect timeout, no HMAC, Mozilla's roots only, edgepipe's headers,
    /// responses read up to 64 KiB.
    pub fn new(endpoint: impl Into<String>, api_key: impl Into<String>) -> Self {
        HttpSinkOptions {
            endpoint: endpoint.into(),
            api_key: api_key.into(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            hmac_key: None,
            ca_certificates_pem: Vec::new(),
            seed_compatible: false,
            max_response_bytes: 64 * 1024,
        }
    }

    /// Sets the request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Signs every request with HMAC-SHA256 under `key`.
    pub fn with_hmac_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.hmac_key = Some(key.into());
        self
    }

    /// Trusts the CA certificates in `pem` too (appended to any given before).
    pub fn with_ca_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        if !self.ca_certificates_pem.is_empty() {
            self.ca_certificates_pem.push(b'\n');
        }
        self.ca_certificates_pem.extend_from_slice(pem.as_ref());
        self
    }

    /// Switches seed-compatible mode on or off.
    pub fn with_seed_compatible(mut self, seed_compatible: bool) -> Self {
        self.seed_compatible = seed_compatible;
        self
    }

    /// Sets the response body cap.
    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }
}

/// Delivers batches to an ingest service over HTTP(S), keeping connections
/// open between batches.
///
/// Outcomes (see `docs/delivery.md` for the full table):
///
/// - `200 {"status":"duplicate"}` → [`Delivered::Duplicate`], any other 2xx whose
///   body is the protocol's JSON with `"status":"ok"` → [`Delivered::Stored`]; a 2xx
///   with any other body is a retryable failure (a proxy's page is no proof the
///   batch was stored);
/// - other statuses through [`SendFailure::from_http_status`], with `Retry-After`
///   in either form; redirects are not followed (a permanent failure: fix the endpoint);
/// - refused, reset or closed connections, DNS and TLS failures, timeouts →
///   [`SendFailure::Unreachable`].
///
/// ```
/// use std::time::Duration;
/// use edgepipe_core::deliver::{HttpSink, HttpSinkOptions, Sink};
///
/// let sink = HttpSink::new(
///     HttpSinkOptions::new("https://ingest.example.com", "valid-api-key")
///         .with_request_timeout(Duration::from_secs(30))
///         .with_hmac_key(b"shared secret".to_vec()),
/// )?;
/// assert_eq!(sink.describe(), "http:https://ingest.example.com/api/ingest");
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    described: String,
    api_key: String,
    hmac_key: Option<Vec<u8>>,
    seed_compatible: bool,
    max_response_bytes: usize,
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HttpSink")
            .field("url", &self.described)
            .field("seed_compatible", &self.seed_compatible)
            .field("signed", &self.hmac_key.is_some())
            .finish_non_exhaustive()
    }
}

fn config_error(key: &str, message: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl HttpSink {
    /// A sink set up by `options`. Fails with [`Error::Config`] for an endpoint
    /// that is not an `http://` or `https://` URL, CA certificates that do not
    /// parse, or an HMAC key in seed-compatible mode (the seed sends no signature).
    pub fn new(options: HttpSinkOptions) -> Result<Self> {
        let endpoint = options.endpoint.trim().trim_end_matches('/');
        let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
            endpoint.len() > scheme.len() && endpoint[..scheme.len()].eq_ignore_ascii_case(scheme)
        });
        if !scheme_ok {
            return Err(config_error(
                "endpoint",
                format!("{endpoint:?} is not an http:// or https:// URL"),
            ));
        }
        let url = format!("{endpoint}{INGEST_PATH}");
        let parsed: ureq::http::Uri = url
            .parse()
            .map_err(|error| config_error("endpoint", format!("{endpoint:?}: {error}")))?;
        if parsed.host().is_none_or(str::is_empty) || parsed.query().is_some() {
            return Err(config_error(
                "endpoint",
                format!("{endpoint:?} needs a host and no query"),
            ));
        }
        if options.seed_compatible && options.hmac_key.is_some() {
            return Err(config_error(
                "hmac_key",
                "seed-compatible mode sends only the seed's headers, so no signature: \
                 drop the HMAC key or the seed-compatible mode",
            ));
        }

        let mut tls = TlsConfig::builder();
        if !options.ca_certificates_pem.is_empty() {
            let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()))
                .collect();
            let before = roots.len();
            for item in ureq::tls::parse_pem(&options.ca_certificates_pem) {
                match item {
                    Ok(PemItem::Certificate(certificate)) => roots.push(certificate),
                    Ok(_) => {}
                    Err(error) => {
                        return Err(config_error("ca_certificates_pem", error.to_string()));
                    }
                }
            }
            if roots.len() == before {
                return Err(config_error(
                    "ca_certificates_pem",
                    "no CERTIFICATE block found in the PEM text",
                ));
            }
            tls = tls.root_certs(RootCerts::from(roots));
        }

        let config = ureq::Agent::config_builder()
            // Statuses are classified here, not turned into errors.
            .http_status_as_error(false)
            // A redirect of a POST is a misconfigured endpoint: report it, do not follow.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // No proxy from the environment: the endpoint is what is configured, and a
            // stray HTTP_PROXY must not send telemetry elsewhere.
            .proxy(None)
            .timeout_global(Some(options.request_timeout))
            .timeout_connect(Some(options.connect_timeout))
            .user_agent(concat!("edgepipe/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();

        Ok(HttpSink {
            agent: config.new_agent(),
            described: format!("http:{}", redact_userinfo(&url)),
            url,
            api_key: options.api_key,
            hmac_key: options.hmac_key,
            seed_compatible: options.seed_compatible,
            max_response_bytes: options.max_response_bytes,
        })
    }

    /// The URL batches are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn post(&self, batch: &Batch) -> Result<Delivered, SendFailure> {
        let envelope = &batch.envelope;
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/octet-stream")
            .header("X-API-Key", &self.api_key)
            .header("X-Batch-ID", &envelope.batch_id);
        if let Some(encoding) = content_encoding(envelope.compression) {
            request = request.header("Content-Encoding", encoding);
        }
        if !self.seed_compatible {
            request = request
                .header("X-Edgepipe-Codec", envelope.codec.name())
                .header("X-Edgepipe-Checksum", &envelope.checksum)
                .header("X-Edgepipe-Source", &envelope.source_id)
                .header("X-Edgepipe-Records", envelope.record_count.to_string())
                .header("X-Edgepipe-Created-At", envelope.created_at.to_iso8601());
            if let Some(range) = envelope.sequence {
                request = request.header(
                    "X-Edgepipe-Sequence",
                    format!("{}:{}-{}", range.epoch, range.first, range.last),
                );
            }
            if let Some(key) = &self.hmac_key {
                request = request.header(
                    "X-Edgepipe-Signature",
                    signature(key, &envelope.batch_id, &batch.payload),
                );
            }
        }

        let mut response = request
            .send(&batch.payload[..])
            .map_err(|error| classify_transport(&error))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after_at(value, Timestamp::now()));
        let mut body = Vec::new();
        let read = response
            .body_mut()
            .as_reader()
            .take(u64::try_from(self.max_response_bytes).unwrap_or(u64::MAX))
            .read_to_end(&mut body);
        let body = String::from_utf8_lossy(&body);
        if let Some(failure) = SendFailure::from_http_status(status, retry_after, &body) {
            // A failure status says what happened even if its body broke off.
            return Err(failure);
        }
        if let Err(error) = read {
            return Err(SendFailure::unreachable(format!(
                "HTTP {status}: reading the response: {error}"
            )));
        }
        confirmation(status, &body, &envelope.batch_id)
    }
}

impl Sink for HttpSink {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn send(&mut self, batch: &Batch) -> Result<Delivered, SendFailure> {
        if self.seed_compatible {
            seed_readable(batch)?;
        }
        self.post(batch)
    }
}

/// The `Content-Encoding` of a payload: the compression's own name (`gzip`,
/// `lz4`, `zstd`, as the receiver reads them); `None` sends no header (identity).
fn content_encoding(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => None,
        other => Some(other.name()),
    }
}

/// Refuses a batch the seed's service cannot read: it `json.loads` the body after
/// an optional gunzip.
fn seed_readable(batch: &Batch) -> Result<(), SendFailure> {
    let envelope = &batch.envelope;
    if !matches!(envelope.codec, Codec::Json | Codec::JsonPython) {
        return Err(SendFailure::permanent(format!(
            "seed-compatible mode: codec {} cannot be read by a seed receiver (json or json-python only)",
            envelope.codec.name()
        )));
    }
    if !matches!(
        envelope.compression,
        Compression::None | Compression::Gzip { .. }
    ) {
        return Err(SendFailure::permanent(format!(
            "seed-compatible mode: compression {} cannot be read by a seed receiver (gzip or none only)",
            envelope.compression.name()
        )));
    }
    Ok(())
}

/// Reads a 2xx body: the protocol's JSON object with `"status"` `ok` or
/// `duplicate` (and, when present, this batch's id).
fn confirmation(status: u16, body: &str, batch_id: &str) -> Result<Delivered, SendFailure> {
    let unexpected = |why: &str| {
        let shown: String = body.trim().chars().take(200).collect();
        SendFailure::retryable(format!(
            "HTTP {status} but {why}, so the batch is not known to be stored: {shown:?}"
        ))
    };
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|_| unexpected("the body is not JSON"))?;
    if let Some(id) = value.get("batch_id")
        && id.as_str() != Some(batch_id)
    {
        return Err(unexpected("the answer names another batch"));
    }
    match value.get("status").and_then(serde_json::Value::as_str) {
        Some("ok") => Ok(Delivered::Stored),
        Some("duplicate") => Ok(Delivered::Duplicate),
        _ => Err(unexpected("the body has no status \"ok\" or \"duplicate\"")),
    }
}

/// Classifies a failure before any response was read.
fn classify_transport(error: &ureq::Error) -> SendFailure {
    use ureq::Error as E;
    match error {
        E::Io(io) => SendFailure::unreachable(format!("connection failed ({:?}): {io}", io.kind())),
        E::Timeout(which) => SendFailure::unreachable(format!("timed out ({which})")),
        E::HostNotFound => SendFailure::unreachable("host not found (DNS)"),
        E::ConnectionFailed => SendFailure::unreachable("connection failed"),
        E::Tls(_) | E::Rustls(_) | E::Pem(_) | E::TlsRequired => {
            SendFailure::unreachable(format!("TLS: {error}"))
        }
        // Headers that cannot be sent (a source id with a control character) or
        // a URL that cannot be used: a retry would send the same.
        E::Http(_) | E::BadUri(_) => SendFailure::permanent(format!("request refused: {error}")),
        // The server answered, but not in HTTP/1.1: perhaps an overloaded proxy.
        _ => SendFailure::retryable(format!("HTTP exchange failed: {error}")),
    }
}

/// `url` without `user:password@`, for logs.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2xx_body_must_be_the_protocols_answer() {
        assert_eq!(
            confirmation(200, r#"{"status":"ok","batch_id":"b1"}"#, "b1"),
            Ok(Delivered::Stored)
        );
        assert_eq!(
            confirmation(200, r#"{"status":"duplicate","batch_id":"b1"}"#, "b1"),
            Ok(Delivered::Duplicate)
        );
        assert_eq!(
            confirmation(201, r#"{"status":"ok"}"#, "b1"),
            Ok(Delivered::Stored)
        );
        for garbage in [
            "",
            "<html>ok</html>",
            r#"{"status":"error"}"#,
            r#"["ok"]"#,
            r#"{"status":"ok","batch_id":"b2"}"#,
        ] {
            assert!(
                matches!(
                    confirmation(200, garbage, "b1"),
                    Err(SendFailure::Retryable { .. })
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn userinfo_is_left_out_of_descriptions() {
        assert_eq!(
            redact_userinfo("https://user:secret@host:8443/api/ingest"),
            "https://host:8443/api/ingest"
        );
        assert_eq!(redact_userinfo("http://host/a@b"), "http://host/a@b");
    }
}
