//! The NATS JetStream sink: each batch published to a stream and confirmed by
//! JetStream's PubAck, with `Nats-Msg-Id` = the batch id so the stream drops a
//! retried batch within its duplicate window.
//!
//! The message is the batch in its binary form, [`Batch::to_bytes`] (magic `EPB`,
//! the envelope, then the payload as compressed; `docs/wire-format.md`), as the
//! MQTT sink sends it; NATS headers repeat what the HTTP sink's `X-Edgepipe-*`
//! headers say, so a consumer can route or filter without opening the payload.
//! `docs/nats.md` has the options, the subject template, the duplicate-window
//! caveat and the table of failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamByNameErrorKind, PublishError, PublishErrorKind,
};
use async_nats::jetstream::{self, ErrorCode, stream};
use async_nats::{ConnectErrorKind, HeaderMap, ServerAddr};

use super::retry::SendFailure;
use super::sink::{Delivered, Sink};
use crate::batch::{Batch, Envelope};
use crate::error::{Error, Result};

/// The subject template used when none is given.
pub const DEFAULT_SUBJECT: &str = "edgepipe.{source}.batches";

/// How a [`NatsSink`] connects and publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOptions {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); the client picks one and
    /// fails over to the others.
    pub servers: Vec<String>,
    /// Subject template; `{source}`, `{codec}` and `{batch_id}` are replaced by the
    /// batch's values, each made one valid subject token (see [`subject_token`]).
    pub subject: String,
    /// Create the stream (or use it as it is, if it exists) before the first
    /// publish; `None` expects the stream to exist.
    pub ensure_stream: Option<NatsStream>,
    /// How the client proves who it is.
    pub auth: NatsAuth,
    /// TLS to the server; `None` is plain TCP (unless the server demands TLS).
    pub tls: Option<NatsTls>,
    /// The client's name, shown in the server's connection list.
    pub client_name: Option<String>,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long one `send` may take, connecting and the PubAck included, before
    /// the batch counts as [`SendFailure::Unreachable`].
    pub request_timeout: Duration,
}

impl NatsOptions {
    /// Options for one server URL and the defaults: subject [`DEFAULT_SUBJECT`],
    /// no stream creation, no credentials, plain TCP, 10 s to connect, 30 s per send.
    pub fn new(server: impl Into<String>) -> Self {
        NatsOptions {
            servers: vec![server.into()],
            subject: DEFAULT_SUBJECT.to_owned(),
            ensure_stream: None,
            auth: NatsAuth::None,
            tls: None,
            client_name: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The stream a [`NatsSink`] creates when it does not exist (file storage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsStream {
    /// The stream's name (no spaces, `.`, `*` or `>`).
    pub name: String,
    /// The subjects it captures, wildcards allowed (`edgepipe.>`); they must cover
    /// every subject the template renders.
    pub subjects: Vec<String>,
    /// How long JetStream remembers a `Nats-Msg-Id`: a retry within it is dropped
    /// as a duplicate, a retry after it is stored again. Make it longer than the
    /// longest a batch can wait between its first attempt and its last
    /// (`docs/nats.md`).
    pub duplicate_window: Duration,
}

impl NatsStream {
    /// A stream `name` capturing `subjects`, with a 2-minute duplicate window
    /// (JetStream's default).
    pub fn new(name: impl Into<String>, subjects: Vec<String>) -> Self {
        NatsStream {
            name: name.into(),
            subjects,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// How a [`NatsSink`] authenticates.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    None,
    /// A token (`authorization { token: … }` on the server).
    Token(String),
    /// A user name and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// The text of a `.creds` file (a user JWT and its nkey seed, decentralised auth).
    Credentials(String),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs.
        match self {
            NatsAuth::None => formatter.write_str("None"),
            NatsAuth::Token(_) => formatter.write_str("Token(..)"),
            NatsAuth::UserPassword { user, .. } => {
                write!(formatter, "UserPassword {{ user: {user:?}, .. }}")
            }
            NatsAuth::Credentials(_) => formatter.write_str("Credentials(..)"),
        }
    }
}

/// TLS settings of a [`NatsSink`] (rustls with the ring provider).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// Trust the platform's root certificates.
    pub native_roots: bool,
    /// PEM text of further CA certificates to trust (a private CA, or a
    /// self-signed server certificate).
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// Publishes each batch to JetStream and returns once the stream's PubAck for it
/// has arrived.
///
/// | what happens | `send` returns |
/// | --- | --- |
/// | PubAck | `Ok(Delivered::Stored)` |
/// | PubAck with `duplicate: true` (the id was seen within the duplicate window) | `Ok(Delivered::Duplicate)` |
/// | connection refused or lost, TLS failure, no PubAck within `request_timeout` | `SendFailure::Unreachable` |
/// | no responders, and JetStream cannot say which stream holds the subject (leader election, JetStream starting) | `SendFailure::Retryable` |
/// | no responders, and JetStream says no stream captures the subject | `SendFailure::Permanent` (with `ensure_stream`: `Retryable`, the stream is created again) |
/// | a JetStream error with a 5xx-like code (storage, cluster unavailable) | `SendFailure::Retryable` |
/// | the message exceeds the server's `max_payload` or the stream's `max_msg_size` | `SendFailure::Permanent` (never sent, or refused) |
/// | the server refuses the credentials, or a publish permission | `SendFailure::Permanent` |
/// | any other JetStream error (4xx-like) | `SendFailure::Permanent` |
///
/// After any failure the connection and the runtime it ran on are dropped and
/// the next `send` connects anew, so a publish that failed cannot reach the
/// stream later, behind the batches sent after it.
///
/// ```
/// use edgepipe_core::deliver::{NatsOptions, NatsSink, Sink};
///
/// let mut options = NatsOptions::new("nats://127.0.0.1:4222");
/// options.subject = "plant-3.{source}.{codec}".into();
/// let sink = NatsSink::new(options)?; // connects on the first send
/// assert_eq!(sink.describe(), "nats://127.0.0.1:4222/plant-3.{source}.{codec}");
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
pub struct NatsSink {
    options: NatsOptions,
    servers: Vec<ServerAddr>,
    subject: SubjectTemplate,
    tls: Option<rustls::ClientConfig>,
    runtime: Option<tokio::runtime::Runtime>,
    link: Option<Link>,
}

struct Link {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// The last error the server sent on this connection (`-ERR`), such as a
    /// permissions violation, which arrives apart from the publish it is about.
    server_error: Arc<Mutex<Option<String>>>,
    /// Woken when the connection drops: an ack awaited on it cannot come back.
    lost: Arc<tokio::sync::Notify>,
    stream_ready: bool,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NatsSink")
            .field("options", &self.options)
            .field("connected", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// A sink with these options. Checks the server URLs, the subject template,
    /// the stream settings and the TLS roots; connects on the first
    /// [`send`](Sink::send).
    pub fn new(options: NatsOptions) -> Result<Self> {
        if options.servers.is_empty() {
            return Err(config("nats.servers", "give at least one server URL"));
        }
        let servers = options
            .servers
            .iter()
            .map(|url| {
                url.parse::<ServerAddr>()
                    .map_err(|error| config("nats.servers", format!("{url:?}: {error}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let subject = SubjectTemplate::parse(&options.subject)?;
        if let Some(stream) = &options.ensure_stream {
            if stream.name.is_empty()
                || stream
                    .name
                    .contains(|c: char| matches!(c, '.' | '*' | '>') || c.is_whitespace())
            {
                return Err(config(
                    "nats.ensure_stream.name",
                    "must be non-empty, without `.`, `*`, `>` or whitespace",
                ));
            }
            if stream.subjects.is_empty() {
                return Err(config(
                    "nats.ensure_stream.subjects",
                    "give the subjects the stream captures",
                ));
            }
        }
        let tls = options.tls.as_ref().map(tls_config).transpose()?;
        Ok(NatsSink {
            options,
            servers,
            subject,
            tls,
            runtime: None,
            link: None,
        })
    }

    /// The subject `batch` is published to.
    pub fn subject_of(&self, batch: &Batch) -> String {
        self.subject.render(&batch.envelope)
    }

    /// Makes the sink's runtime on first use. It has one worker thread rather
    /// than none: the client must answer the server's PINGs between sends, or
    /// an idle gateway's connection is closed as stale and the next publish on
    /// it fails for nothing.
    fn ensure_runtime(&mut self) -> std::io::Result<()> {
        if self.runtime.is_none() {
            self.runtime = Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("edgepipe-nats")
                    .enable_all()
                    .build()?,
            );
        }
        Ok(())
    }
}

impl Sink for NatsSink {
    fn describe(&self) -> String {
        format!(
            "{}/{}",
            self.options.servers.join(","),
            self.options.subject
        )
    }

    fn send(&mut self, batch: &Batch) -> std::result::Result<Delivered, SendFailure> {
        let subject = self.subject_of(batch);
        let headers = headers(&batch.envelope);
        let message = batch.to_bytes();
        let timeout = self.options.request_timeout;
        let mut link = self.link.take();
        let outcome = match self.ensure_runtime() {
            Ok(()) => {
                let runtime = self.runtime.as_ref().expect("made above");
                let (options, servers, tls) = (&self.options, &self.servers, &self.tls);
                let publish = publish(&mut link, options, servers, tls, subject, headers, message);
                Ok(runtime.block_on(async { tokio::time::timeout(timeout, publish).await }))
            }
            Err(error) => Err(error),
        };
        let outcome = match outcome {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_elapsed)) => {
                let server_error = link
                    .as_ref()
                    .and_then(|link| link.server_error.lock().expect("not poisoned").take());
                Err(
                    permission_denied(server_error.as_deref()).unwrap_or_else(|| {
                        SendFailure::unreachable(format!(
                            "no PubAck from NATS JetStream within {timeout:?}"
                        ))
                    }),
                )
            }
            Err(error) => Err(SendFailure::retryable(format!(
                "starting the NATS client's runtime: {error}"
            ))),
        };
        match outcome {
            Ok(delivered) => {
                self.link = link;
                Ok(delivered)
            }
            Err(failure) => {
                // Dropping the runtime ends the connection's tasks with it: a
                // publish still buffered in the client is never written later.
                drop(link);
                self.runtime = None;
                Err(failure)
            }
        }
    }
}

async fn publish(
    link: &mut Option<Link>,
    options: &NatsOptions,
    servers: &[ServerAddr],
    tls: &Option<rustls::ClientConfig>,
    subject: String,
    headers: HeaderMap,
    message: Vec<u8>,
) -> std::result::Result<Delivered, SendFailure> {
    if link.is_none() {
        *link = Some(connect(options, servers, tls).await?);
    }
    let link = link.as_mut().expect("connected above");
    if let (Some(stream), false) = (&options.ensure_stream, link.stream_ready) {
        ensure_stream(&link.jetstream, stream).await?;
        link.stream_ready = true;
    }
    let acked = async {
        link.jetstream
            .publish_with_headers(subject.clone(), headers, message.into())
            .await?
            .await
    };
    // Interest in a disconnection is registered before the state is read, so a
    // drop between the two still wakes the wait below.
    let lost = Arc::clone(&link.lost);
    let dropped = lost.notified();
    tokio::pin!(dropped);
    dropped.as_mut().enable();
    if link.client.connection_state() != async_nats::connection::State::Connected {
        return Err(SendFailure::unreachable(
            "NATS connection lost; the client is reconnecting",
        ));
    }
    let acked = tokio::select! {
        acked = acked => acked,
        () = dropped => {
            return Err(SendFailure::unreachable(
                "NATS connection lost before the PubAck arrived",
            ));
        }
    };
    match acked {
        Ok(ack) if ack.duplicate => Ok(Delivered::Duplicate),
        Ok(_) => Ok(Delivered::Stored),
        Err(error) if error.kind() == PublishErrorKind::StreamNotFound => {
            Err(no_stream(link, options, &subject).await)
        }
        Err(error) => {
            let server_error = link.server_error.lock().expect("not poisoned").take();
            Err(classify_publish(&error, server_error.as_deref()))
        }
    }
}

async fn connect(
    options: &NatsOptions,
    servers: &[ServerAddr],
    tls: &Option<rustls::ClientConfig>,
) -> std::result::Result<Link, SendFailure> {
    let server_error = Arc::new(Mutex::new(None));
    let lost = Arc::new(tokio::sync::Notify::new());
    let (seen, dropped) = (Arc::clone(&server_error), Arc::clone(&lost));
    let mut connect = async_nats::ConnectOptions::new()
        .connection_timeout(options.connect_timeout)
        .request_timeout(Some(options.request_timeout))
        .event_callback(move |event| {
            let (seen, dropped) = (Arc::clone(&seen), Arc::clone(&dropped));
            async move {
                match event {
                    async_nats::Event::ServerError(error) => {
                        *seen.lock().expect("not poisoned") = Some(error.to_string());
                    }
                    async_nats::Event::Disconnected => dropped.notify_waiters(),
                    _ => {}
                }
            }
        });
    if let Some(name) = &options.client_name {
        connect = connect.name(name);
    }
    connect = match &options.auth {
        NatsAuth::None => connect,
        NatsAuth::Token(token) => connect.token(token.clone()),
        NatsAuth::UserPassword { user, password } => {
            connect.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Credentials(text) => connect
            .credentials(text)
            .map_err(|error| SendFailure::permanent(format!("NATS credentials: {error}")))?,
    };
    if let Some(config) = tls {
        connect = connect.require_tls(true).tls_client_config(config.clone());
    }
    let client = connect
        .connect(servers)
        .await
        .map_err(|error| match error.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                SendFailure::permanent(format!("NATS refused the credentials: {error}"))
            }
            _ => SendFailure::unreachable(format!("NATS connect: {error}")),
        })?;
    let mut jetstream = jetstream::new(client.clone());
    jetstream.set_timeout(options.request_timeout);
    Ok(Link {
        client,
        jetstream,
        server_error,
        lost,
        stream_ready: false,
    })
}

async fn ensure_stream(
    context: &jetstream::Context,
    wanted: &NatsStream,
) -> std::result::Result<(), SendFailure> {
    let config = stream::Config {
        name: wanted.name.clone(),
        subjects: wanted.subjects.clone(),
        duplicate_window: wanted.duplicate_window,
        storage: stream::StorageType::File,
        ..stream::Config::default()
    };
    context
        .get_or_create_stream(config)
        .await
        .map(drop)
        .map_err(|error| {
            // A stream that cannot be made as asked (its subjects overlap another's,
            // the account has no JetStream) is a configuration error: no retry fixes it.
            let message = format!("NATS stream {:?}: {error}", wanted.name);
            match error.kind() {
                CreateStreamErrorKind::JetStream(api) if api.code() < 500 => {
                    SendFailure::permanent(message)
                }
                CreateStreamErrorKind::EmptyStreamName
                | CreateStreamErrorKind::InvalidStreamName
                | CreateStreamErrorKind::DomainAndExternalSet => SendFailure::permanent(message),
                _ => SendFailure::retryable(message),
            }
        })
}

/// JetStream gave no answer to the publish ("no responders"). A stream whose
/// leader is being elected, or a server still restoring its streams, looks the
/// same as no stream at all, so JetStream is asked which stream captures the
/// subject: only its "none" is permanent.
async fn no_stream(link: &mut Link, options: &NatsOptions, subject: &str) -> SendFailure {
    match link.jetstream.stream_by_subject(subject).await {
        Ok(stream) => SendFailure::retryable(format!(
            "NATS stream {stream:?} did not answer a publish to {subject:?} (no responders)"
        )),
        Err(error) if error.kind() == GetStreamByNameErrorKind::NotFound => {
            if options.ensure_stream.is_some() {
                // Deleted since it was ensured: the next attempt makes it again.
                link.stream_ready = false;
                SendFailure::retryable(format!(
                    "no NATS stream captures {subject:?}; it is created again on the next attempt"
                ))
            } else {
                SendFailure::permanent(format!(
                    "no NATS JetStream stream captures the subject {subject:?}"
                ))
            }
        }
        Err(error) => SendFailure::retryable(format!(
            "NATS JetStream did not answer for {subject:?} (no responders; {error})"
        )),
    }
}

/// A publish the server refused for permissions is never answered: the `-ERR`
/// it sent instead is the only word of it.
fn permission_denied(server_error: Option<&str>) -> Option<SendFailure> {
    server_error
        .filter(|text| text.to_ascii_lowercase().contains("permissions violation"))
        .map(|text| SendFailure::permanent(format!("NATS: {text}")))
}

fn classify_publish(error: &PublishError, server_error: Option<&str>) -> SendFailure {
    if let Some(failure) = permission_denied(server_error) {
        return failure;
    }
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded => SendFailure::permanent(format!("NATS: {error}")),
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
            SendFailure::unreachable(format!("NATS: {error}"))
        }
        _ => match std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<jetstream::Error>())
        {
            Some(api) => classify_api(api),
            None => SendFailure::retryable(format!("NATS: {error}")),
        },
    }
}

/// A JetStream API error by its HTTP-like code: 5xx (storage, cluster, resources
/// for now) is worth a retry, 4xx is about the message or the request.
fn classify_api(error: &jetstream::Error) -> SendFailure {
    let message = format!("NATS JetStream: {error}");
    if error.error_code() == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM {
        return SendFailure::permanent(message);
    }
    match error.code() {
        500..=599 => SendFailure::retryable(message),
        _ => SendFailure::permanent(message),
    }
}

fn tls_config(tls: &NatsTls) -> Result<rustls::ClientConfig> {
    super::tls::client_config("nats.tls", tls.native_roots, tls.extra_ca_pem.as_deref())
}

fn config(key: &str, message: impl std::fmt::Display) -> Error {
    Error::Config {
        key: key.to_owned(),
        message: message.to_string(),
    }
}

/// The message headers: `Nats-Msg-Id` (JetStream's deduplication id) and the HTTP
/// sink's `X-Edgepipe-*` headers with the same values.
fn headers(envelope: &Envelope) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", header_value(&envelope.batch_id));
    headers.insert("X-Batch-ID", header_value(&envelope.batch_id));
    headers.insert("X-Edgepipe-Source", header_value(&envelope.source_id));
    headers.insert("X-Edgepipe-Codec", envelope.codec.name());
    headers.insert("X-Edgepipe-Compression", envelope.compression.name());
    headers.insert("X-Edgepipe-Checksum", header_value(&envelope.checksum));
    headers.insert("X-Edgepipe-Records", envelope.record_count.to_string());
    headers.insert(
        "X-Edgepipe-Created-At",
        envelope.created_at.to_iso8601().as_str(),
    );
    if let Some(range) = envelope.sequence {
        headers.insert(
            "X-Edgepipe-Sequence",
            format!("{}:{}-{}", range.epoch, range.first, range.last),
        );
    }
    headers
}

/// `text` as a header value: `%` and control characters (CR and LF would end the
/// header) become `%XX` per byte, so the value is unambiguous and cannot add headers.
fn header_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if character == '%' || character.is_control() {
            percent_encode(character, &mut out);
        } else {
            out.push(character);
        }
    }
    out
}

fn percent_encode(character: char, out: &mut String) {
    let mut buffer = [0; 4];
    for byte in character.encode_utf8(&mut buffer).bytes() {
        out.push_str(&format!("%{byte:02X}"));
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Source,
    Codec,
    BatchId,
}

#[derive(Clone, Debug)]
struct SubjectTemplate(Vec<Part>);

impl SubjectTemplate {
    fn parse(template: &str) -> Result<Self> {
        let invalid = |message: String| config("nats.subject", message);
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            parts.push(Part::Literal(rest[..open].to_owned()));
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| invalid(format!("unclosed `{{` in {template:?}")))?;
            parts.push(match &rest[open + 1..open + close] {
                "source" => Part::Source,
                "codec" => Part::Codec,
                "batch_id" => Part::BatchId,
                other => {
                    return Err(invalid(format!(
                        "unknown placeholder {{{other}}}: use {{source}}, {{codec}} or {{batch_id}}"
                    )));
                }
            });
            rest = &rest[open + close + 1..];
        }
        parts.push(Part::Literal(rest.to_owned()));
        parts.retain(|part| part != &Part::Literal(String::new()));
        let template_parts = SubjectTemplate(parts);
        // Every placeholder renders to a non-empty token without `.`, so checking
        // the template with stand-ins checks every subject it can render.
        let sample = template_parts.render_with("s", "c", "b");
        let tokens_ok = sample.split('.').all(|token| {
            !token.is_empty()
                && token != "*"
                && token != ">"
                && !token.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        if !tokens_ok || sample.starts_with('$') {
            return Err(invalid(format!(
                "{template:?} is not a publish subject: tokens must be non-empty, \
                 without whitespace, `*` or `>` wildcards, and not start with `$`"
            )));
        }
        Ok(template_parts)
    }

    fn render(&self, envelope: &Envelope) -> String {
        self.render_with(
            &subject_token(&envelope.source_id),
            envelope.codec.name(),
            &subject_token(&envelope.batch_id),
        )
    }

    fn render_with(&self, source: &str, codec: &str, batch_id: &str) -> String {
        let mut subject = String::new();
        for part in &self.0 {
            subject.push_str(match part {
                Part::Literal(text) => text,
                Part::Source => source,
                Part::Codec => codec,
                Part::BatchId => batch_id,
            });
        }
        subject
    }
}

/// `text` made one valid NATS subject token: ASCII letters, digits and
/// punctuation other than `.` (the token separator), `*` and `>` (wildcards),
/// `$` (reserved subjects such as `$JS` and `$SYS` start with it) and `%` are
/// kept; every other byte (those, whitespace, control characters, non-ASCII)
/// becomes `%XX`. Distinct ids stay distinct, an id cannot add tokens or act as
/// a wildcard, and an empty id becomes `%`.
///
/// ```
/// use edgepipe_core::deliver::subject_token;
///
/// assert_eq!(subject_token("line-1.press*2"), "line-1%2Epress%2A2");
/// assert_eq!(subject_token("> all"), "%3E%20all");
/// assert_eq!(subject_token(""), "%");
/// ```
pub fn subject_token(text: &str) -> String {
    if text.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_ascii_graphic() && !matches!(character, '.' | '*' | '>' | '$' | '%') {
            out.push(character);
        } else {
            percent_encode(character, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_check_placeholders_tokens_and_wildcards() {
        assert!(SubjectTemplate::parse(DEFAULT_SUBJECT).is_ok());
        assert!(SubjectTemplate::parse("a.{source}.{codec}.{batch_id}").is_ok());
        assert!(SubjectTemplate::parse("{source}").is_ok());
        for bad in [
            "",
            "a.{device}",
            "a.{source",
            "a.*.b",
            "a.>",
            "a..{source}",
            ".a",
            "a.",
            "a b.{source}",
            "$JS.API.{source}",
        ] {
            assert!(SubjectTemplate::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tokens_from_data_cannot_add_tokens_or_wildcards() {
        for id in [
            "a.b",
            "*",
            ">",
            "a.>",
            "$JS",
            "50%",
            "tab\there",
            "sp ace",
            "ü.ü",
            "",
            "\r\n",
        ] {
            let token = subject_token(id);
            assert!(
                !token.is_empty()
                    && token.chars().all(|c| c.is_ascii_graphic())
                    && !token.contains(['.', '*', '>', '$']),
                "{id:?} -> {token:?}"
            );
        }
        // Distinct ids stay distinct: the escape character is escaped too.
        assert_ne!(subject_token("a%2Eb"), subject_token("a.b"));
        assert_ne!(subject_token("%"), subject_token(""));
        assert_eq!(subject_token("gw-1_A:b"), "gw-1_A:b");
        assert_eq!(subject_token("ü"), "%C3%BC");
    }

    #[test]
    fn header_values_cannot_end_the_header() {
        assert_eq!(header_value("gw\r\nX-Evil: 1"), "gw%0D%0AX-Evil: 1");
        assert_ne!(header_value("a%0Ab"), header_value("a\nb"));
        assert_eq!(header_value("gw-1 ü"), "gw-1 ü");
    }

    #[test]
    fn api_errors_split_on_their_code() {
        let api = |code: usize, err_code: u64| -> jetstream::Error {
            serde_json::from_value(serde_json::json!({
                "code": code, "err_code": err_code, "description": "test"
            }))
            .unwrap()
        };
        assert!(matches!(
            classify_api(&api(503, 10008)),
            SendFailure::Retryable { .. }
        ));
        assert!(matches!(
            classify_api(&api(500, 10047)),
            SendFailure::Retryable { .. }
        ));
        assert!(matches!(
            classify_api(&api(400, 10054)),
            SendFailure::Permanent { .. }
        ));
        assert!(matches!(
            classify_api(&api(400, 10003)),
            SendFailure::Permanent { .. }
        ));
    }

    #[test]
    fn a_permissions_violation_is_permanent_and_a_lost_ack_unreachable() {
        let timed_out = PublishError::new(PublishErrorKind::TimedOut);
        assert!(matches!(
            classify_publish(&timed_out, None),
            SendFailure::Unreachable { .. }
        ));
        assert!(matches!(
            classify_publish(
                &timed_out,
                Some("Permissions Violation for Publish to \"edgepipe.gw.batches\"")
            ),
            SendFailure::Permanent { .. }
        ));
        let too_big = PublishError::new(PublishErrorKind::MaxPayloadExceeded);
        assert!(matches!(
            classify_publish(&too_big, None),
            SendFailure::Permanent { .. }
        ));
    }

    #[test]
    fn options_are_checked_when_the_sink_is_made() {
        assert!(NatsSink::new(NatsOptions::new("nats://127.0.0.1:4222")).is_ok());
        let mut no_servers = NatsOptions::new("x");
        no_servers.servers.clear();
        assert!(NatsSink::new(no_servers).is_err());
        let mut bad_subject = NatsOptions::new("nats://127.0.0.1:4222");
        bad_subject.subject = "a.*".into();
        assert!(NatsSink::new(bad_subject).is_err());
        let mut bad_stream = NatsOptions::new("nats://127.0.0.1:4222");
        bad_stream.ensure_stream = Some(NatsStream::new("a.b", vec!["a.>".into()]));
        assert!(NatsSink::new(bad_stream).is_err());
        let mut no_roots = NatsOptions::new("tls://127.0.0.1:4222");
        no_roots.tls = Some(NatsTls::default());
        assert!(NatsSink::new(no_roots).is_err());
        assert_eq!(
            format!(
                "{:?}",
                NatsAuth::UserPassword {
                    user: "u".into(),
                    password: "secret".into()
                }
            ),
            "UserPassword { user: \"u\", .. }"
        );
    }
}
