//! Shared pieces of edgepipe's benchmarks: where the input comes from.
//!
//! Every benchmark reads the shared workload (JSON Lines, the format of the
//! project's `bench/workload.py`) so figures compare with the seed's. In order:
//! 1. the file named by `EDGEPIPE_WORKLOAD`, if set;
//! 2. otherwise `workload.py` is run when it sits in `shared/bench/` beside the
//!    checkout (the output is cached under the target directory);
//! 3. otherwise the same model is generated in-process
//!    ([`edgepipe_examples::workload`]), so benchmarks run anywhere.

pub mod batching;
pub mod measure;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the workload bytes came from, for the report.
#[derive(Clone, Debug)]
pub enum WorkloadSource {
    /// A file given by the user.
    File(PathBuf),
    /// The shared `workload.py`, run with `-n`.
    SharedScript(PathBuf),
    /// The in-process generator.
    Synthetic,
}

/// `records` lines of the shared workload, and where they came from.
pub fn workload_jsonl(records: usize) -> (Vec<u8>, WorkloadSource) {
    if let Some(path) = std::env::var_os("EDGEPIPE_WORKLOAD").map(PathBuf::from) {
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        return (first_lines(bytes, records), WorkloadSource::File(path));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/workload.py");
    if script.is_file()
        && let Some(bytes) = run_shared_script(&script, records)
    {
        return (bytes, WorkloadSource::SharedScript(script));
    }
    let spec = edgepipe_examples::workload::WorkloadSpec::default();
    (
        edgepipe_examples::workload::jsonl(spec, records),
        WorkloadSource::Synthetic,
    )
}

/// The first `lines` lines of `bytes` (all of them when it has fewer).
pub fn first_lines(mut bytes: Vec<u8>, lines: usize) -> Vec<u8> {
    if lines == 0 {
        return Vec::new();
    }
    let end = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(lines - 1)
        .map(|(index, _)| index);
    if let Some(end) = end {
        bytes.truncate(end + 1);
    }
    bytes
}

fn run_shared_script(script: &Path, records: usize) -> Option<Vec<u8>> {
    let cache = std::env::temp_dir().join(format!("edgepipe-workload-{records}.jsonl"));
    if let Ok(bytes) = std::fs::read(&cache) {
        return Some(bytes);
    }
    let output = Command::new("python3")
        .arg(script)
        .args(["-q", "-n", &records.to_string()])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let _ = std::fs::write(&cache, &output.stdout);
    Some(output.stdout)
}

/// An ingest store that keeps nothing, as the seed's FastAPI service stores
/// nothing (it prints a line per batch): what the receiver's own work costs.
#[derive(Debug)]
pub struct DiscardStore;

impl edgepipe_core::ingest::Store for DiscardStore {
    fn put(
        &mut self,
        _key: &str,
        records: &[edgepipe_core::DataRecord],
    ) -> edgepipe_core::Result<()> {
        std::hint::black_box(records);
        Ok(())
    }

    fn recover(&mut self, _key: &str) -> edgepipe_core::Result<Vec<edgepipe_core::DataRecord>> {
        Ok(Vec::new())
    }
}
