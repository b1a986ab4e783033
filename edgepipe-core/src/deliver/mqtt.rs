//! The MQTT sink: each batch published at QoS 1 and confirmed by the broker's PUBACK.
//!
//! The message is the batch in its binary form, [`Batch::to_bytes`] (magic `EPB`,
//! the envelope, then the payload as compressed; `docs/wire-format.md`), so a
//! subscriber needs nothing but the message to check and decode the batch
//! ([`Batch::from_bytes`] with its [`DecodeLimits`](crate::batch::DecodeLimits)).
//! `docs/delivery.md` says why this rather than MQTT 5 user properties.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, Connection, ConnectionError, Event, Outgoing, Packet, QoS,
    RecvTimeoutError, TlsConfiguration, Transport,
};

use super::retry::SendFailure;
use super::sink::{Delivered, Sink};
use crate::batch::{Batch, Envelope};
use crate::error::{Error, Result};

/// The topic template used when none is given.
pub const DEFAULT_TOPIC: &str = "edgepipe/{source}/batches";

/// How an [`MqttSink`] connects and publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttOptions {
    /// The broker's host name or IP address.
    pub host: String,
    /// The broker's port (1883 plain, 8883 TLS by convention).
    pub port: u16,
    /// The MQTT client id. Keep it stable per gateway: with `clean_session` false the
    /// broker keys the session by it, and two clients with one id knock each other off.
    pub client_id: String,
    /// Topic template; `{source}`, `{codec}` and `{batch_id}` are replaced by the
    /// batch's values, each made safe as one topic level (see [`topic_level`]).
    pub topic: String,
    /// MQTT keep-alive: the broker drops the connection after 1.5× this without traffic.
    pub keep_alive: Duration,
    /// User name and password, when the broker asks for them.
    pub credentials: Option<(String, String)>,
    /// `false` (the default) asks the broker to keep the client's session
    /// (its QoS 1 state) across reconnects. The sink's own delivery guarantee
    /// does not rest on it: a publish whose PUBACK did not arrive fails the
    /// `send`, the batch stays queued and is published again, with the same
    /// batch id, on the next attempt.
    pub clean_session: bool,
    /// TLS to the broker; `None` is plain TCP.
    pub tls: Option<MqttTls>,
    /// How long one `send` may take, connecting included, before the batch counts
    /// as [`SendFailure::Unreachable`].
    pub request_timeout: Duration,
    /// Largest MQTT packet sent; a bigger batch is refused as
    /// [`SendFailure::Permanent`] without being sent (brokers cap packets too:
    /// Mosquitto's `max_packet_size`, 128 KiB on some cloud brokers).
    pub max_packet_bytes: usize,
}

impl MqttOptions {
    /// Options for `host:port` with the given client id and the defaults: topic
    /// [`DEFAULT_TOPIC`], keep-alive 30 s, persistent session, no credentials,
    /// plain TCP, 30 s request timeout, 16 MiB packets.
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> Self {
        MqttOptions {
            host: host.into(),
            port,
            client_id: client_id.into(),
            topic: DEFAULT_TOPIC.to_owned(),
            keep_alive: Duration::from_secs(30),
            credentials: None,
            clean_session: false,
            tls: None,
            request_timeout: Duration::from_secs(30),
            max_packet_bytes: 16 * 1024 * 1024,
        }
    }
}

/// TLS settings of an [`MqttSink`] (rustls with the ring provider).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MqttTls {
    /// Trust the platform's root certificates.
    pub native_roots: bool,
    /// PEM text of further CA certificates to trust (a private CA, or a
    /// self-signed broker certificate).
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// Publishes each batch at QoS 1 and returns once the broker's PUBACK for that
/// publish has arrived.
///
/// | what happens | `send` returns |
/// | --- | --- |
/// | PUBACK received | `Ok(Delivered::Stored)` (MQTT cannot tell a duplicate; a subscriber dedups by batch id) |
/// | refused or dropped connection, TLS failure, no PUBACK within `request_timeout` | `SendFailure::Unreachable` |
/// | the broker refuses the credentials or the client id | `SendFailure::Permanent` |
/// | the message would exceed `max_packet_bytes` | `SendFailure::Permanent` (never sent) |
///
/// After any failure the connection is dropped and the next `send` connects
/// anew, so a publish that failed is never delivered later behind the batches
/// sent after it: the queue, not the client, holds what is unconfirmed.
///
/// ```
/// use edgepipe_core::deliver::{MqttOptions, MqttSink, Sink};
///
/// let mut options = MqttOptions::new("127.0.0.1", 1883, "gateway-7");
/// options.topic = "plant-3/{source}/{codec}".into();
/// let sink = MqttSink::new(options)?; // connects on the first send
/// assert_eq!(sink.describe(), "mqtt://127.0.0.1:1883/plant-3/{source}/{codec}");
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
pub struct MqttSink {
    options: MqttOptions,
    topic: TopicTemplate,
    transport: Option<Arc<rustls::ClientConfig>>,
    link: Option<Link>,
}

struct Link {
    client: Client,
    connection: Connection,
}

impl std::fmt::Debug for MqttSink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MqttSink")
            .field("options", &self.options)
            .field("connected", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl MqttSink {
    /// A sink with these options. Checks the topic template, client id and TLS
    /// roots; connects on the first [`send`](Sink::send).
    pub fn new(options: MqttOptions) -> Result<Self> {
        let topic = TopicTemplate::parse(&options.topic)?;
        if options.client_id.is_empty() || options.client_id.starts_with(' ') {
            return Err(config(
                "mqtt.client_id",
                "must be non-empty and not start with a space",
            ));
        }
        if options.host.is_empty() {
            return Err(config("mqtt.host", "must be non-empty"));
        }
        let transport = match &options.tls {
            Some(tls) => Some(Arc::new(tls_config(tls)?)),
            None => None,
        };
        Ok(MqttSink {
            options,
            topic,
            transport,
            link: None,
        })
    }

    /// The topic `batch` is published to.
    pub fn topic_of(&self, batch: &Batch) -> String {
        self.topic.render(&batch.envelope)
    }

    fn connect(&self) -> Link {
        let options = &self.options;
        let mut mqtt = rumqttc::MqttOptions::new(&options.client_id, &options.host, options.port);
        mqtt.set_keep_alive(options.keep_alive)
            .set_clean_session(options.clean_session)
            // Incoming packets are only acks; outgoing is checked in `send` first, so
            // rumqttc's own limit (which would end the connection) leaves headroom.
            .set_max_packet_size(64 * 1024, options.max_packet_bytes.saturating_add(1024));
        if let Some((user, password)) = &options.credentials {
            mqtt.set_credentials(user, password);
        }
        if let Some(config) = &self.transport {
            mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                config.clone(),
            )));
        }
        // One request at a time is all `send` ever has outstanding.
        let (client, connection) = Client::new(mqtt, 4);
        Link { client, connection }
    }

    fn publish(&mut self, topic: String, message: Vec<u8>) -> std::result::Result<(), SendFailure> {
        let timeout = self.options.request_timeout;
        let deadline = Instant::now() + timeout;
        if self.link.is_none() {
            self.link = Some(self.connect());
        }
        let link = self.link.as_mut().expect("connected above");
        link.client
            .publish(topic, QoS::AtLeastOnce, false, message)
            .map_err(|error| SendFailure::unreachable(format!("MQTT client: {error}")))?;
        // rumqttc numbers the publish when it writes it; the PUBACK carrying that
        // number is the broker's confirmation. Earlier publishes cannot answer
        // here: a failed send drops the connection and its state with it.
        let mut packet_id = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = match link.connection.recv_timeout(left) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(SendFailure::unreachable(format!(
                        "no PUBACK from the MQTT broker within {timeout:?}"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SendFailure::unreachable("MQTT client closed"));
                }
            };
            match event {
                Ok(Event::Outgoing(Outgoing::Publish(id))) if packet_id.is_none() => {
                    packet_id = Some(id);
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == packet_id => {
                    return Ok(());
                }
                Ok(_) => {}
                Err(error) => return Err(classify(&error)),
            }
        }
    }
}

impl Sink for MqttSink {
    fn describe(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        format!(
            "{scheme}://{}:{}/{}",
            self.options.host, self.options.port, self.options.topic
        )
    }

    fn send(&mut self, batch: &Batch) -> std::result::Result<Delivered, SendFailure> {
        let topic = self.topic_of(batch);
        let message = batch.to_bytes();
        // Fixed header (≤ 5 bytes), topic length (2), topic, packet id (2), message.
        let packet = 9 + topic.len() + message.len();
        if packet > self.options.max_packet_bytes {
            return Err(SendFailure::permanent(format!(
                "MQTT message of {packet} bytes exceeds max_packet_bytes {}",
                self.options.max_packet_bytes
            )));
        }
        let outcome = self.publish(topic, message);
        if outcome.is_err() {
            self.link = None;
        }
        outcome.map(|()| Delivered::Stored)
    }
}

fn classify(error: &ConnectionError) -> SendFailure {
    match error {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword
            | ConnectReturnCode::NotAuthorized
            | ConnectReturnCode::BadClientId
            | ConnectReturnCode::RefusedProtocolVersion),
        ) => SendFailure::permanent(format!("MQTT broker refused the connection: {code:?}")),
        // Everything else (refused or reset, TLS, timeouts, a broker that says it
        // is unavailable) is about reaching the broker, not about the batch.
        other => SendFailure::unreachable(format!("MQTT: {other}")),
    }
}

fn tls_config(tls: &MqttTls) -> Result<rustls::ClientConfig> {
    super::tls::client_config("mqtt.tls", tls.native_roots, tls.extra_ca_pem.as_deref())
}

fn config(key: &str, message: impl std::fmt::Display) -> Error {
    Error::Config {
        key: key.to_owned(),
        message: message.to_string(),
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
struct TopicTemplate(Vec<Part>);

impl TopicTemplate {
    fn parse(template: &str) -> Result<Self> {
        let invalid = |message: String| config("mqtt.topic", message);
        if template.is_empty() {
            return Err(invalid("must be non-empty".into()));
        }
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
        for part in &parts {
            if let Part::Literal(text) = part
                && text.contains(['+', '#', '}', '\0'])
            {
                return Err(invalid(format!(
                    "{template:?} has `+`, `#`, `}}` or NUL outside a placeholder; a publish topic takes no wildcards"
                )));
            }
        }
        parts.retain(|part| part != &Part::Literal(String::new()));
        Ok(TopicTemplate(parts))
    }

    fn render(&self, envelope: &Envelope) -> String {
        let mut topic = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(text) => topic.push_str(text),
                Part::Source => topic.push_str(&topic_level(&envelope.source_id)),
                Part::Codec => topic.push_str(envelope.codec.name()),
                Part::BatchId => topic.push_str(&topic_level(&envelope.batch_id)),
            }
        }
        topic
    }
}

/// `text` made safe as (part of) one MQTT topic level: `/` (a level separator),
/// `+` and `#` (wildcards), `$` (reserved topics such as `$SYS` start with it),
/// `%`, and control characters become `%XX` per UTF-8 byte; everything else is
/// kept. Distinct ids stay distinct, an id cannot add levels or match as a
/// wildcard, and an empty id becomes `%`.
///
/// ```
/// use edgepipe_core::deliver::topic_level;
///
/// assert_eq!(topic_level("line-1/press#2"), "line-1%2Fpress%232");
/// assert_eq!(topic_level("$SYS"), "%24SYS");
/// assert_eq!(topic_level(""), "%");
/// ```
pub fn topic_level(text: &str) -> String {
    if text.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '/' | '+' | '#' | '$' | '%') || character.is_control() {
            let mut buffer = [0; 4];
            for byte in character.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_check_placeholders_and_wildcards() {
        assert!(TopicTemplate::parse(DEFAULT_TOPIC).is_ok());
        assert!(TopicTemplate::parse("a/{source}/{codec}/{batch_id}").is_ok());
        for bad in ["", "a/{device}", "a/{source", "a/+/b", "a/#", "a}b"] {
            assert!(TopicTemplate::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn levels_from_data_cannot_add_levels_or_wildcards() {
        for id in ["a/b", "+", "#", "a/#", "$SYS/x", "50%", "tab\there", "ü/ü"] {
            let level = topic_level(id);
            assert!(
                !level.contains(['/', '+', '#', '$']) && !level.chars().any(char::is_control),
                "{id:?} -> {level:?}"
            );
        }
        // Distinct ids stay distinct (the escape character is escaped too).
        assert_ne!(topic_level("a%2Fb"), topic_level("a/b"));
        assert_eq!(topic_level("ü/ü"), "ü%2Fü");
    }

    #[test]
    fn connection_refusals_for_credentials_are_permanent_and_the_rest_unreachable() {
        let refused = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        assert!(matches!(classify(&refused), SendFailure::Permanent { .. }));
        let down = ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable);
        assert!(matches!(classify(&down), SendFailure::Unreachable { .. }));
        let io = ConnectionError::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert!(matches!(classify(&io), SendFailure::Unreachable { .. }));
    }

    /// A stand-in broker that accepts the connection (CONNACK) and then reads
    /// and never acknowledges: `send` must not report the batch delivered.
    #[test]
    fn without_a_puback_the_send_fails_as_unreachable() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (received, publishes) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 4096];
            let read = stream.read(&mut buffer).unwrap();
            assert_eq!(buffer[0] >> 4, 1, "CONNECT first ({read} bytes)");
            // CONNACK: session not present, accepted.
            stream.write_all(&[0x20, 0x02, 0x00, 0x00]).unwrap();
            let mut seen = Vec::new();
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                seen.extend_from_slice(&buffer[..read]);
            }
            received.send(seen).unwrap();
        });
        let mut options = MqttOptions::new("127.0.0.1", port, "no-puback");
        // The failure path's own timeout; nothing in the assertion is timed.
        options.request_timeout = Duration::from_millis(300);
        let mut sink = MqttSink::new(options).unwrap();
        let records = crate::record::json::parse_jsonl(
            br#"{"record_id":"r1","device_id":"d1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{"t":1}}"#,
        )
        .map(|(_, record)| record.unwrap())
        .collect::<Vec<_>>();
        let batch = crate::batch::BatchEncoder::new(
            "gw",
            crate::batch::Codec::Json,
            crate::batch::Compression::None,
        )
        .unwrap()
        .encode(&records, crate::Timestamp::UNIX_EPOCH)
        .unwrap();
        let outcome = sink.send(&batch);
        assert!(
            matches!(&outcome, Err(SendFailure::Unreachable { reason }) if reason.contains("PUBACK")),
            "{outcome:?}"
        );
        // The failed send dropped the connection, and the publish did go out.
        let seen = publishes.recv().unwrap();
        server.join().unwrap();
        assert_eq!(seen[0] >> 4, 3, "a PUBLISH was sent");
        assert_eq!((seen[0] >> 1) & 0b11, 1, "at QoS 1");
    }

    #[test]
    fn tls_needs_some_trust_root_and_reads_pem() {
        assert!(tls_config(&MqttTls::default()).is_err());
        let bad = MqttTls {
            native_roots: false,
            extra_ca_pem: Some(
                b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec(),
            ),
        };
        assert!(tls_config(&bad).is_err());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = MqttTls {
            native_roots: false,
            extra_ca_pem: Some(cert.pem().into_bytes()),
        };
        assert!(tls_config(&good).is_ok());
    }
}
