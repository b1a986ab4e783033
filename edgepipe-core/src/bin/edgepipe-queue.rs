//! `edgepipe-queue`: inspect, verify and repair a segmented-log queue directory.
//!
//! ```text
//! edgepipe-queue stats  DIR   entries by status, bytes, oldest entry, damage found
//! edgepipe-queue verify DIR   damage and loss per segment; exit 1 if any
//! edgepipe-queue repair DIR   what opening the queue repairs, done now (needs the queue closed)
//! edgepipe-queue dead   DIR   the dead-lettered entries
//! ```
//!
//! `stats`, `verify` and `dead` only read, so they are safe on a queue in use.
//! Exit codes: 0 success (and a clean queue for `verify`), 1 damage found by
//! `verify`, 2 a usage or I/O error.

use std::process::ExitCode;

use edgepipe_core::queue::{EntryStatus, SegmentedLog};

const USAGE: &str = "usage: edgepipe-queue stats|verify|repair|dead DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, dir] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "stats" => stats(dir),
        "verify" => verify(dir),
        "repair" => repair(dir),
        "dead" => dead(dir),
        _ => {
            eprintln!("unknown command {command:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("edgepipe-queue: {}", error.message_with_sources());
            ExitCode::from(2)
        }
    }
}

fn stats(dir: &str) -> edgepipe_core::Result<ExitCode> {
    let inspection = SegmentedLog::inspect(dir)?;
    let (mut ready, mut retry, mut in_flight, mut dead) = (0, 0, 0, 0);
    for entry in &inspection.entries {
        match entry.status {
            EntryStatus::Ready => ready += 1,
            EntryStatus::Retry(_) => retry += 1,
            EntryStatus::InFlight => in_flight += 1,
            EntryStatus::Dead => dead += 1,
        }
    }
    let stats = &inspection.stats;
    println!(
        "entries: {} (ready {ready}, retry {retry}, in flight {in_flight}, dead {dead})",
        inspection.entries.len()
    );
    println!(
        "bytes: {} held, {} in segment files",
        stats.bytes, inspection.segment_bytes
    );
    match stats.oldest_created_at {
        Some(oldest) => println!("oldest: {oldest}"),
        None => println!("oldest: -"),
    }
    println!("segments: {}", inspection.report.segments.len());
    let report = &inspection.report;
    if report.is_clean() {
        println!("damage: none");
    } else {
        println!(
            "damage: found, {} entries lost (run `edgepipe-queue verify {dir}` for details)",
            report.lost
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(dir: &str) -> edgepipe_core::Result<ExitCode> {
    let report = SegmentedLog::verify(dir)?;
    print!("{report}");
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn repair(dir: &str) -> edgepipe_core::Result<ExitCode> {
    let report = SegmentedLog::repair(dir)?;
    print!("{report}");
    println!("repaired");
    Ok(ExitCode::SUCCESS)
}

fn dead(dir: &str) -> edgepipe_core::Result<ExitCode> {
    let inspection = SegmentedLog::inspect(dir)?;
    println!("id\tattempts\tsource\tbatch\tcreated_at\tbytes");
    for entry in inspection
        .entries
        .iter()
        .filter(|e| e.status == EntryStatus::Dead)
    {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            entry.id, entry.attempts, entry.source_id, entry.batch_id, entry.created_at, entry.size
        );
    }
    Ok(ExitCode::SUCCESS)
}
