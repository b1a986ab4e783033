//! The main example: an edge gateway's pipeline, end to end.
//!
//! Reads sensor readings (a JSON Lines file in the shared workload format, or a
//! synthetic fleet of 1,000 devices when no file is given), runs them through a
//! transform pipeline built from config, and writes what would go to the cloud
//! and what was quarantined, then says what happened at every stage.
//!
//! ```text
//! cargo run --release -p edgepipe-examples --bin edge-pipeline -- \
//!     [--input FILE.jsonl] [--records N] [--devices N] [--glitch-every N] \
//!     [--config pipeline.toml|.json] [--out DIR]
//! ```

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use edgepipe_core::record::{DataRecord, JsonLinesReader, JsonOptions};
use edgepipe_core::transform::{Pipeline, Quarantined};
use edgepipe_examples::workload::{Workload, WorkloadSpec};

const DEFAULT_CONFIG: &str = include_str!("../config/edge-pipeline.toml");
const CHUNK: usize = 4096;

struct Options {
    input: Option<PathBuf>,
    records: usize,
    spec: WorkloadSpec,
    config: Option<PathBuf>,
    out: PathBuf,
}

fn usage() -> &'static str {
    "usage: edge-pipeline [--input FILE.jsonl] [--records N] [--devices N] [--glitch-every N] \
     [--config FILE.toml|FILE.json] [--out DIR]"
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        input: None,
        records: 200_000,
        spec: WorkloadSpec {
            glitch_every: 500,
            ..WorkloadSpec::default()
        },
        config: None,
        out: PathBuf::from("edgepipe-out"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage().to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = |value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--input" => options.input = Some(value.into()),
            "--records" | "-n" => options.records = number(&value)?,
            "--devices" | "-d" => options.spec.devices = number(&value)?.max(1),
            "--glitch-every" => options.spec.glitch_every = number(&value)? as u64,
            "--config" => options.config = Some(value.into()),
            "--out" => options.out = value.into(),
            _ => return Err(format!("unknown option {flag}\n{}", usage())),
        }
    }
    Ok(options)
}

fn load_pipeline(config: Option<&PathBuf>) -> Result<(Pipeline, String), String> {
    let Some(path) = config else {
        let pipeline = Pipeline::from_toml_str(DEFAULT_CONFIG).map_err(|e| e.to_string())?;
        return Ok((
            pipeline,
            "built-in examples/config/edge-pipeline.toml".to_owned(),
        ));
    };
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let pipeline = if path.extension().is_some_and(|ext| ext == "json") {
        Pipeline::from_json_str(&text)
    } else {
        Pipeline::from_toml_str(&text)
    };
    Ok((
        pipeline.map_err(|e| format!("{}: {e}", path.display()))?,
        path.display().to_string(),
    ))
}

#[derive(Default)]
struct Totals {
    read: u64,
    unreadable: u64,
    forwarded: u64,
    quarantined: u64,
    bytes_out: u64,
}

struct Outputs {
    records: BufWriter<File>,
    quarantine: BufWriter<File>,
    buffer: Vec<u8>,
}

impl Outputs {
    fn write(
        &mut self,
        records: &[DataRecord],
        quarantined: &[Quarantined],
        totals: &mut Totals,
    ) -> std::io::Result<()> {
        let options = JsonOptions::default();
        self.buffer.clear();
        for record in records {
            match record.write_json(&mut self.buffer, &options) {
                Ok(()) => self.buffer.push(b'\n'),
                Err(error) => eprintln!("not forwarded: {error}"),
            }
        }
        totals.bytes_out += self.buffer.len() as u64;
        self.records.write_all(&self.buffer)?;
        self.buffer.clear();
        for entry in quarantined {
            if entry.write_json(&mut self.buffer, &options).is_ok() {
                self.buffer.push(b'\n');
            }
        }
        self.quarantine.write_all(&self.buffer)
    }
}

fn run(options: Options) -> Result<(), String> {
    let (mut pipeline, config_name) = load_pipeline(options.config.as_ref())?;
    fs::create_dir_all(&options.out)
        .map_err(|e| format!("creating {}: {e}", options.out.display()))?;
    let create = |name: &str| {
        let path = options.out.join(name);
        File::create(&path)
            .map(BufWriter::new)
            .map_err(|e| format!("creating {}: {e}", path.display()))
    };
    let mut outputs = Outputs {
        records: create("records.jsonl")?,
        quarantine: create("quarantine.jsonl")?,
        buffer: Vec::with_capacity(1 << 20),
    };

    let source: Box<dyn Iterator<Item = Result<DataRecord, String>>> = match &options.input {
        Some(path) => {
            let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
            let reader = JsonLinesReader::new(BufReader::with_capacity(1 << 20, file));
            Box::new(reader.map(|result| result.map_err(|e| e.to_string())))
        }
        None => Box::new(
            Workload::new(options.spec.clone())
                .take(options.records)
                .map(Ok),
        ),
    };

    let started = Instant::now();
    let mut totals = Totals::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut quarantined = Vec::new();
    let mut source = source.peekable();
    while source.peek().is_some() {
        chunk.clear();
        quarantined.clear();
        for result in source.by_ref().take(CHUNK) {
            totals.read += 1;
            match result {
                Ok(record) => chunk.push(record),
                Err(error) => {
                    totals.unreadable += 1;
                    if totals.unreadable <= 5 {
                        eprintln!("skipped: {error}");
                    }
                }
            }
        }
        pipeline.process_in_place(&mut chunk, &mut quarantined);
        totals.forwarded += chunk.len() as u64;
        totals.quarantined += quarantined.len() as u64;
        outputs
            .write(&chunk, &quarantined, &mut totals)
            .map_err(|e| format!("writing output: {e}"))?;
    }
    outputs.records.flush().map_err(|e| e.to_string())?;
    outputs.quarantine.flush().map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();

    let input_name = match &options.input {
        Some(path) => path.display().to_string(),
        None => format!(
            "synthetic fleet: {} devices, {} readings, a glitch every {}",
            options.spec.devices, options.records, options.spec.glitch_every
        ),
    };
    println!("edgepipe edge pipeline");
    println!("  input     {input_name}");
    println!("  pipeline  {config_name}");
    println!();
    println!(
        "  {:<24} {:>10} {:>10} {:>10} {:>11}",
        "stage", "in", "out", "dropped", "quarantined"
    );
    for stats in pipeline.stats() {
        println!(
            "  {:<24} {:>10} {:>10} {:>10} {:>11}",
            stats.name, stats.records_in, stats.records_out, stats.dropped, stats.quarantined
        );
    }
    println!();
    println!(
        "  read         {:>10} readings ({} unreadable)",
        totals.read, totals.unreadable
    );
    println!(
        "  forwarded    {:>10} readings, {} bytes of JSON",
        totals.forwarded, totals.bytes_out
    );
    println!(
        "  quarantined  {:>10} readings, with reasons",
        totals.quarantined
    );
    println!(
        "  took         {:>10.3} s ({:.0} readings/s)",
        elapsed,
        totals.read as f64 / elapsed.max(1e-9)
    );
    println!();
    println!(
        "  wrote {}/records.jsonl and {}/quarantine.jsonl",
        options.out.display(),
        options.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
