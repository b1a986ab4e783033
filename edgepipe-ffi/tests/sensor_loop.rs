//! `examples/c/sensor_loop.c`, compiled against the static library and run as a
//! user runs it. Without the `delivery` feature its batches must be in the durable
//! queue it leaves behind, readable from Rust; with it, the core's ingest server
//! runs in-process on loopback and every record must land in its data lake once,
//! through the durable queue and through the queue written in C.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{CFLAGS, NATIVE_STATIC_LIBS, c_compiler, feature_cflags, static_library, text};
use edgepipe_core::DataRecord;

/// The example's readings: 2 devices × 25 steps, ids `gw-c:0:0` to `gw-c:0:49`.
const RECORDS: usize = 50;

fn build_example() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = crate_dir.join("../examples/c/sensor_loop.c");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sensor_loop");
    std::fs::create_dir_all(&out_dir).unwrap();
    let program = out_dir.join("sensor_loop");
    let compiler = c_compiler();
    let compile = Command::new(&compiler)
        .args(CFLAGS)
        .args(feature_cflags())
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(&source)
        .arg(static_library())
        .args(NATIVE_STATIC_LIBS)
        .arg("-o")
        .arg(&program)
        .output()
        .unwrap_or_else(|error| panic!("could not run {compiler}: {error}"));
    assert!(
        compile.status.success(),
        "compiling sensor_loop.c failed:\n{}",
        text(&compile.stderr)
    );
    program
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("running sensor_loop");
    assert!(
        output.status.success(),
        "sensor_loop failed ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Every reading the example made, checked field by field, each once.
fn check_records(mut records: Vec<DataRecord>) {
    records.sort_by_key(|record| {
        record
            .record_id
            .rsplit(':')
            .next()
            .and_then(|number| number.parse::<u64>().ok())
    });
    assert_eq!(records.len(), RECORDS, "{records:#?}");
    for (index, record) in records.iter().enumerate() {
        let (step, device) = (index / 2, index % 2);
        assert_eq!(record.record_id, format!("gw-c:0:{index}"));
        assert_eq!(record.device_id, "dev-0");
        assert_eq!(
            record.metadata.get("site").map(|site| site.as_str()),
            Some("plant-7")
        );
        assert_eq!(
            record.metadata.get("device").map(|name| name.as_str()),
            Some(if device == 0 { "dev-0" } else { "dev-1" })
        );
        assert_eq!(
            record
                .payload
                .get("temperature")
                .and_then(|value| value.as_f64()),
            Some(20.0 + step as f64 * 0.5 + device as f64)
        );
        assert_eq!(
            record.timestamp.unix_nanos(),
            1_767_225_600_000_000_000 + step as i64 * 1_000_000_000
        );
    }
}

#[cfg(not(feature = "delivery"))]
#[test]
fn sensor_loop_queues_its_batches_durably() {
    use edgepipe_core::batch::DecodeLimits;
    use edgepipe_core::queue::{LogOptions, Queue, SegmentedLog};
    use edgepipe_core::record::Timestamp;

    let program = build_example();
    let dir = tempfile::tempdir().unwrap();
    let queue_dir = dir.path().join("queue");
    let stdout = run(Command::new(&program).arg(&queue_dir));
    assert_eq!(stdout, "readings: 50 kept, 5 batches queued (depth 5)\n");

    // The example has exited: its queue is read back from the disk.
    let queue = SegmentedLog::open(&queue_dir, LogOptions::default()).unwrap();
    let mut records = Vec::new();
    for pending in queue.take(100, Timestamp::now()).unwrap() {
        let batch = pending.entry.to_batch(&DecodeLimits::default()).unwrap();
        records.extend(batch.decode(&DecodeLimits::default()).unwrap());
    }
    check_records(records);
}

#[cfg(feature = "delivery")]
#[test]
fn sensor_loop_delivers_to_the_ingest_server() {
    use std::sync::Arc;

    use edgepipe_core::ingest::server::{ServerConfig, start};
    use edgepipe_core::ingest::{DataLakeStore, Receiver, ReceiverConfig};

    let program = build_example();
    for queue in ["durable", "c-queue"] {
        let dir = tempfile::tempdir().unwrap();
        let cloud = dir.path().join("cloud");
        let receiver = Arc::new(Receiver::open(ReceiverConfig::new(["k1"]), &cloud).unwrap());
        let server = start(receiver, ServerConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
        let endpoint = format!("http://{}", server.local_addr());

        let mut command = Command::new(&program);
        command
            .arg(dir.path().join("queue"))
            .args([&endpoint, "k1"]);
        if queue == "c-queue" {
            command.arg("--c-queue");
        }
        let stdout = run(&mut command);
        server.shutdown().unwrap();
        assert_eq!(
            stdout,
            "readings: 50 kept, 5 batches queued (depth 5)\n\
             delivered: 5 batches, 50 records (depth 0)\n",
            "through the {queue} queue"
        );
        check_records(DataLakeStore::read_all(&cloud.join("lake")).unwrap());
    }
}

/// Mosquitto on loopback (`apt-get install mosquitto mosquitto-clients`): a
/// persistent subscriber registers first, so the batches the example publishes
/// while it is away wait for it at QoS 1 and no subscription can race the publish.
#[cfg(feature = "delivery")]
#[test]
fn sensor_loop_publishes_to_an_mqtt_broker() {
    use std::net::{TcpListener, TcpStream};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use edgepipe_core::batch::{Batch, DecodeLimits};

    let mosquitto = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("mosquitto"));
    common::require(
        "mosquitto_sub",
        "--help",
        "mosquitto-clients (apt-get install mosquitto mosquitto-clients)",
    );
    let program = build_example();
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    /// Stops the broker by its pid on every way out of the test, a failure included.
    struct Broker(std::process::Child);
    impl Drop for Broker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut broker = Broker(
        Command::new(&mosquitto)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto (apt-get install mosquitto mosquitto-clients)"),
    );
    // Readiness: the listener accepts. The bound only turns a hang into a failure.
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            broker.0.try_wait().unwrap().is_none(),
            "mosquitto exited at start-up"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "mosquitto did not listen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let subscriber = |extra: &[&str]| {
        let port = port.to_string();
        let mut command = Command::new("mosquitto_sub");
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                "1",
                "-c",
                "-i",
                "c-test",
            ])
            .args(["-t", "edgepipe/#"])
            .args(extra);
        command
    };
    run(&mut subscriber(&["-E"]));

    let stdout = run(Command::new(&program)
        .arg(dir.path().join("queue"))
        .args([&format!("mqtt://127.0.0.1:{port}"), "-"]));
    assert_eq!(
        stdout,
        "readings: 50 kept, 5 batches queued (depth 5)\n\
         delivered: 5 batches, 50 records (depth 0)\n"
    );
    // The five batches waited for the subscriber; -F %x prints each payload in hex.
    let messages = run(&mut subscriber(&["-C", "5", "-W", "30", "-F", "%t %x"]));
    drop(broker);

    let mut records = Vec::new();
    for line in messages.lines() {
        let (topic, hex) = line.split_once(' ').expect("topic and payload");
        assert_eq!(topic, "edgepipe/gw-c/batches");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
            .collect();
        let batch = Batch::from_bytes(&bytes, &DecodeLimits::default()).unwrap();
        records.extend(batch.decode(&DecodeLimits::default()).unwrap());
    }
    check_records(records);
}
