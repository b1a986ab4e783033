//! The MQTT sink against a real Mosquitto broker that each test starts on a free
//! loopback port and stops by its pid. A second MQTT client subscribes and hands
//! every message it gets to the test, which waits on that channel, not on time.
//!
//! Needs `mosquitto` (`apt-get install mosquitto mosquitto-clients`); the binary is
//! looked up on `PATH`, in the `sbin` directories Debian uses, or taken from
//! `$MOSQUITTO`. A missing broker fails the tests.
#![cfg(feature = "mqtt")]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use edgepipe_core::Timestamp;
use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::deliver::{
    Delivered, Delivery, DeliveryOptions, DeliveryWorker, Jitter, MqttOptions, MqttSink, MqttTls,
    RetryPolicy, SendFailure, Sink, Step,
};
use edgepipe_core::queue::{Entry, MemoryQueue, Queue, QueueOptions};
use edgepipe_core::record::json::parse_jsonl;

/// Bounds waits that only turn a hang into a failure; nothing is timed.
const HANG: Duration = Duration::from_secs(30);

fn mosquitto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOSQUITTO") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut directories: Vec<PathBuf> = std::env::split_paths(&path).collect();
    directories.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    directories
        .into_iter()
        .map(|directory| directory.join("mosquitto"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto not found (PATH, /usr/sbin or $MOSQUITTO): \
                 apt-get install mosquitto mosquitto-clients"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Tls {
    cert: PathBuf,
    key: PathBuf,
    port: u16,
}

/// A Mosquitto process with a plain listener (and a TLS one when asked), its
/// config in a temporary directory.
struct Broker {
    child: Option<Child>,
    config: PathBuf,
    port: u16,
    tls_port: Option<u16>,
}

impl Broker {
    fn start(dir: &Path, port: u16, tls: Option<&Tls>) -> Broker {
        let mut config = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
        if let Some(tls) = tls {
            config.push_str(&format!(
                "listener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
                tls.port,
                tls.cert.display(),
                tls.key.display()
            ));
        }
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, config).unwrap();
        let mut broker = Broker {
            child: None,
            config: path,
            port,
            tls_port: tls.map(|tls| tls.port),
        };
        broker.restart();
        broker
    }

    /// (Re)starts the process and returns once every listener accepts connections.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto (apt-get install mosquitto mosquitto-clients)");
        self.child = Some(child);
        for port in [Some(self.port), self.tls_port].into_iter().flatten() {
            let started = Instant::now();
            // Readiness: the listener accepts. Polled, bounded by HANG.
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("mosquitto exited at start-up: {status}");
                }
                assert!(
                    started.elapsed() < HANG,
                    "mosquitto did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Stops the process by its pid and waits for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A subscriber on `edgepipe/#`, ready once the broker acknowledged the subscription.
struct Subscriber {
    messages: Receiver<(String, Vec<u8>)>,
    client: rumqttc::Client,
}

impl Subscriber {
    fn connect(port: u16, filter: &str) -> Subscriber {
        let mut options = rumqttc::MqttOptions::new(
            format!("test-subscriber-{}", free_port()),
            "127.0.0.1",
            port,
        );
        options.set_max_packet_size(64 * 1024 * 1024, 64 * 1024);
        let (client, mut connection) = rumqttc::Client::new(options, 16);
        client.subscribe(filter, rumqttc::QoS::AtLeastOnce).unwrap();
        let (ready, subscribed) = mpsc::channel();
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = ready.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                        if sender
                            .send((publish.topic.clone(), publish.payload.to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The broker went away: this subscriber is done.
                    Err(_) => return,
                }
            }
        });
        subscribed
            .recv_timeout(HANG)
            .expect("the broker acknowledged the subscription");
        Subscriber { messages, client }
    }

    fn next(&self) -> (String, Vec<u8>) {
        self.messages
            .recv_timeout(HANG)
            .expect("a message reached the subscriber")
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds).unwrap()
}

fn batch(source: &str, index: usize, codec: Codec) -> Batch {
    let line = format!(
        r#"{{"record_id":"{index}","device_id":"d1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{{"t":{index}}}}}"#
    );
    let records: Vec<_> = parse_jsonl(line.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect();
    BatchEncoder::new(source, codec, Compression::Gzip { level: 6 })
        .unwrap()
        .encode(&records, at(0))
        .unwrap()
}

fn sink_options(port: u16) -> MqttOptions {
    let mut options = MqttOptions::new("127.0.0.1", port, format!("edge-{}", free_port()));
    options.request_timeout = HANG;
    options
}

/// What arrived is the batch: envelope and payload, read back with limits.
fn assert_carries(message: &[u8], expected: &Batch) {
    let received = Batch::from_bytes(message, &DecodeLimits::default()).unwrap();
    assert_eq!(&received, expected);
    assert_eq!(
        received.decode(&DecodeLimits::default()).unwrap(),
        expected.decode(&DecodeLimits::default()).unwrap()
    );
}

#[test]
fn every_batch_arrives_with_its_envelope_on_its_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None);
    let subscriber = Subscriber::connect(broker.port, "#");
    let mut options = sink_options(broker.port);
    options.topic = "edgepipe/{source}/{codec}/{batch_id}".into();
    let mut sink = MqttSink::new(options).unwrap();
    let batches = [
        batch("gw-1", 0, Codec::Json),
        batch("gw-1", 1, Codec::Columnar),
        // A source id that would add levels or match as wildcards if used raw.
        batch("line/1+#", 2, Codec::Msgpack),
    ];
    for batch in &batches {
        assert_eq!(sink.send(batch), Ok(Delivered::Stored));
    }
    for batch in &batches {
        let (topic, message) = subscriber.next();
        let envelope = &batch.envelope;
        let source = if envelope.source_id == "gw-1" {
            "gw-1"
        } else {
            "line%2F1%2B%23"
        };
        assert_eq!(
            topic,
            format!(
                "edgepipe/{source}/{}/{}",
                envelope.codec.name(),
                envelope.batch_id
            )
        );
        assert_eq!(topic, sink.topic_of(batch));
        assert_carries(&message, batch);
    }
}

#[test]
fn the_default_topic_is_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None);
    // Only gw-2's topic: another source's message would not match the filter.
    let subscriber = Subscriber::connect(broker.port, "edgepipe/gw-2/batches");
    let mut sink = MqttSink::new(sink_options(broker.port)).unwrap();
    let wanted = batch("gw-2", 0, Codec::Json);
    assert_eq!(
        sink.send(&batch("gw-1", 0, Codec::Json)),
        Ok(Delivered::Stored)
    );
    assert_eq!(sink.send(&wanted), Ok(Delivered::Stored));
    let (topic, message) = subscriber.next();
    assert_eq!(topic, "edgepipe/gw-2/batches");
    assert_carries(&message, &wanted);
}

#[test]
fn a_broker_that_is_down_leaves_the_batch_queued_until_it_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let queue = Arc::new(MemoryQueue::new(QueueOptions::default()));
    let batches: Vec<Batch> = (0..3).map(|i| batch("gw", i, Codec::Json)).collect();
    for batch in &batches {
        queue.enqueue(Entry::from_batch(batch)).unwrap();
    }
    let options = DeliveryOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(10),
        },
        ..DeliveryOptions::default()
    };
    let sink = MqttSink::new(sink_options(port)).unwrap();
    let mut delivery =
        Delivery::with_jitter(queue.clone(), Box::new(sink), options, Jitter::seeded(7));

    // Nothing listens on the port yet.
    let Step::Retry { retry_at, reason } = delivery.step(at(0)).unwrap() else {
        panic!("expected a retry");
    };
    assert!(reason.starts_with("MQTT"), "{reason}");
    assert_eq!(queue.stats().pending, 3);
    assert_eq!(delivery.metrics().batches_sent, 0);

    let broker = Broker::start(dir.path(), port, None);
    let subscriber = Subscriber::connect(broker.port, "edgepipe/#");
    for _ in &batches {
        assert!(matches!(
            delivery.step(retry_at).unwrap(),
            Step::Sent {
                delivered: Delivered::Stored
            }
        ));
    }
    for batch in &batches {
        let (topic, message) = subscriber.next();
        assert_eq!(topic, "edgepipe/gw/batches");
        assert_carries(&message, batch);
    }
    assert_eq!(queue.stats().pending + queue.stats().in_flight, 0);
    assert_eq!(delivery.metrics().batches_sent, 3);
}

#[test]
fn the_sink_reconnects_after_the_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), free_port(), None);
    let mut sink = MqttSink::new(sink_options(broker.port)).unwrap();
    let first = batch("gw", 0, Codec::Json);
    let second = batch("gw", 1, Codec::Json);
    {
        let subscriber = Subscriber::connect(broker.port, "edgepipe/#");
        assert_eq!(sink.send(&first), Ok(Delivered::Stored));
        assert_carries(&subscriber.next().1, &first);
    }
    broker.stop();
    assert!(matches!(
        sink.send(&second),
        Err(SendFailure::Unreachable { .. })
    ));
    broker.restart();
    let subscriber = Subscriber::connect(broker.port, "edgepipe/#");
    assert_eq!(sink.send(&second), Ok(Delivered::Stored));
    let (topic, message) = subscriber.next();
    assert_eq!(topic, "edgepipe/gw/batches");
    assert_carries(&message, &second);
}

#[test]
fn the_worker_thread_drains_a_queue_into_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None);
    let subscriber = Subscriber::connect(broker.port, "edgepipe/#");
    let queue = Arc::new(MemoryQueue::new(QueueOptions::default()));
    let sink = MqttSink::new(sink_options(broker.port)).unwrap();
    let worker = DeliveryWorker::spawn(Delivery::new(
        queue.clone(),
        Box::new(sink),
        DeliveryOptions::default(),
    ))
    .unwrap();
    let batches: Vec<Batch> = (0..20)
        .map(|i| batch(["gw-a", "gw-b"][i % 2], i, Codec::Columnar))
        .collect();
    for batch in &batches {
        queue.enqueue(Entry::from_batch(batch)).unwrap();
        worker.notify();
    }
    let mut per_source: std::collections::HashMap<String, Vec<Batch>> = Default::default();
    for _ in &batches {
        let (topic, message) = subscriber.next();
        let received = Batch::from_bytes(&message, &DecodeLimits::default()).unwrap();
        assert_eq!(
            topic,
            format!("edgepipe/{}/batches", received.envelope.source_id)
        );
        per_source
            .entry(received.envelope.source_id.clone())
            .or_default()
            .push(received);
    }
    // Every batch, in order per source.
    for source in ["gw-a", "gw-b"] {
        let expected: Vec<Batch> = batches
            .iter()
            .filter(|b| b.envelope.source_id == source)
            .cloned()
            .collect();
        assert_eq!(per_source[source], expected);
    }
    let metrics = worker.shutdown();
    assert_eq!(metrics.batches_sent, 20);
    assert_eq!(queue.stats().pending + queue.stats().in_flight, 0);
}

#[test]
fn an_oversized_batch_is_refused_without_being_sent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None);
    let mut options = sink_options(broker.port);
    options.max_packet_bytes = 64;
    let mut sink = MqttSink::new(options).unwrap();
    assert!(matches!(
        sink.send(&batch("gw", 0, Codec::Json)),
        Err(SendFailure::Permanent { reason }) if reason.contains("max_packet_bytes")
    ));
}

fn self_signed(dir: &Path) -> (Tls, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let tls = Tls {
        cert: dir.join("broker.crt"),
        key: dir.join("broker.key"),
        port: free_port(),
    };
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    std::fs::write(&tls.key, key.serialize_pem()).unwrap();
    (tls, cert.pem())
}

#[test]
fn tls_with_a_self_signed_broker_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_pem) = self_signed(dir.path());
    let broker = Broker::start(dir.path(), free_port(), Some(&tls));
    let subscriber = Subscriber::connect(broker.port, "edgepipe/#");

    let mut options = sink_options(tls.port);
    options.tls = Some(MqttTls {
        native_roots: false,
        extra_ca_pem: Some(ca_pem.into_bytes()),
    });
    let mut sink = MqttSink::new(options).unwrap();
    assert!(sink.describe().starts_with("mqtts://"));
    let sent = batch("gw", 0, Codec::Json);
    assert_eq!(sink.send(&sent), Ok(Delivered::Stored));
    let (topic, message) = subscriber.next();
    assert_eq!(topic, "edgepipe/gw/batches");
    assert_carries(&message, &sent);

    // A client that trusts another CA does not get through.
    let other = rcgen::KeyPair::generate().unwrap();
    let other_ca = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&other)
        .unwrap();
    let mut options = sink_options(tls.port);
    options.tls = Some(MqttTls {
        native_roots: false,
        extra_ca_pem: Some(other_ca.pem().into_bytes()),
    });
    let mut untrusting = MqttSink::new(options).unwrap();
    assert!(matches!(
        untrusting.send(&sent),
        Err(SendFailure::Unreachable { reason }) if reason.contains("TLS")
    ));
}
