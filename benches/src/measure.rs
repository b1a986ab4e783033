//! What a benchmark run costs the process: wall time, CPU time (user + system,
//! every thread, from `getrusage`) and peak resident memory.
//!
//! Peak RSS is per measurement on Linux: writing `5` to `/proc/self/clear_refs`
//! resets the kernel's high-water mark (`VmHWM`), so each scenario reports its
//! own peak rather than the largest of the run so far. Where that is not possible
//! the figure is the process's peak since it started, and says so.

use std::time::Instant;

/// A measurement in progress.
#[derive(Debug)]
pub struct Measurement {
    started: Instant,
    cpu_started: f64,
    peak_rss_scope: &'static str,
}

/// A finished measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// User + system CPU seconds of the whole process (all threads, servers in the
    /// process included).
    pub cpu_seconds: f64,
    /// Peak resident set size in bytes, if the platform reports it.
    pub peak_rss_bytes: Option<u64>,
    /// `measurement` when the peak was reset at the start, `process` when it is the
    /// process's peak since it started.
    pub peak_rss_scope: &'static str,
}

impl Measurement {
    /// Starts measuring now.
    pub fn start() -> Measurement {
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Measurement {
            cpu_started: process_cpu_seconds(),
            started: Instant::now(),
            peak_rss_scope: if reset { "measurement" } else { "process" },
        }
    }

    /// Stops measuring.
    pub fn finish(self) -> Cost {
        let seconds = self.started.elapsed().as_secs_f64();
        Cost {
            seconds,
            cpu_seconds: process_cpu_seconds() - self.cpu_started,
            peak_rss_bytes: peak_rss_bytes(),
            peak_rss_scope: self.peak_rss_scope,
        }
    }
}

/// User + system CPU seconds the process has used.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The resident-set high-water mark (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
