//! `kafka-windows`: the seeds' stream processor on edgepipe's stages. Consumes the
//! topic the ingest tier publishes (`edgepipe-ingest --kafka-brokers … --kafka-topic …`:
//! one record per Kafka record, keyed by device), drops repeats by record id,
//! and runs a 10 s tumbling window per device in event time, printing one line
//! per window with the mean and max of every numeric field:
//!
//! ```text
//! kafka-windows --brokers 127.0.0.1:9092 --topic telemetry [--window-seconds 10] [--records N]
//! ```
//!
//! With `--records N` it reads until it has seen N distinct records (waiting for
//! the rest to arrive), then flushes the open windows and exits; without, it
//! processes what the topic holds now. Each output line is
//! `window <device> <start> <field>.mean=<v> <field>.max=<v> …` with the fields
//! sorted, followed by a last line `read <n> records, <r> repeats dropped`.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use edgepipe_core::deliver::KafkaOptions;
use edgepipe_core::deliver::kafka::HEADER_RECORD_ID;
use edgepipe_core::ingest::KafkaReader;
use edgepipe_core::record::Value;
use edgepipe_core::window::{WindowConfig, WindowOutput};

const USAGE: &str =
    "usage: kafka-windows --brokers HOST:PORT[,..] --topic T [--window-seconds S] [--records N]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kafka-windows: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let (mut brokers, mut topic, mut window_seconds, mut wanted) = (None, None, 10.0, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--topic" => topic = Some(value()?),
            "--window-seconds" => {
                window_seconds = value()?
                    .parse()
                    .map_err(|_| "--window-seconds takes seconds")?
            }
            "--records" => {
                wanted = Some(
                    value()?
                        .parse::<usize>()
                        .map_err(|_| "--records takes a count")?,
                )
            }
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    let (Some(brokers), Some(topic)) = (brokers, topic) else {
        return Err(USAGE.to_owned());
    };
    let brokers = brokers.split(',').map(str::to_owned);
    let mut reader = KafkaReader::new(KafkaOptions::new(brokers, topic))
        .map_err(|e| e.message_with_sources())?;

    // Event time: a window closes when a later reading of its device moves the
    // watermark past its end; the rest close at the flush.
    let mut config = WindowConfig::tumbling(window_seconds);
    config.aggregates = vec!["mean".into(), "max".into()];
    let mut window = config.build().map_err(|e| e.message_with_sources())?;
    let mut out = WindowOutput::default();

    let (mut seen, mut repeats) = (HashSet::new(), 0u64);
    loop {
        for message in reader
            .read_available()
            .map_err(|e| e.message_with_sources())?
        {
            // The ingest tier may publish a record twice after a crash; the id says so.
            let id = message
                .header(HEADER_RECORD_ID)
                .unwrap_or_default()
                .to_owned();
            if !seen.insert(id) {
                repeats += 1;
                continue;
            }
            let record = message.record().map_err(|e| e.message_with_sources())?;
            window.push(&record, &mut out);
        }
        match wanted {
            Some(wanted) if seen.len() < wanted => std::thread::sleep(Duration::from_millis(50)),
            _ => break,
        }
    }
    window.flush(&mut out);

    for aggregate in &out.aggregates {
        let start = aggregate
            .metadata
            .get("window.start")
            .map_or("?", |start| start.as_str());
        let mut line = format!("window {} {start}", aggregate.device_id);
        let mut fields: Vec<(&str, &Value)> = aggregate.payload.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in fields {
            line.push_str(&format!(" {name}={}", number(value)));
        }
        println!("{line}");
    }
    println!("read {} records, {repeats} repeats dropped", seen.len());
    Ok(())
}

fn number(value: &Value) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::Float(x) => format!("{x}"),
        other => format!("{other:?}"),
    }
}
