//! `edgepipe_window`: a window stage, readings in, aggregate records out.

use std::ffi::c_char;

use edgepipe_core::record::json::{parse_jsonl, write_jsonl};
use edgepipe_core::record::{JsonOptions, Timestamp};
use edgepipe_core::window::{WindowConfig, WindowOperator, WindowOutput, WindowStats};

use crate::buffer::{self, edgepipe_buffer};
use crate::error::{Failure, edgepipe_status};
use crate::ffi::{self, Out};
use crate::panic;
use crate::pipeline::error_lines;
use crate::record::edgepipe_record;

/// A window stage: readings grouped per series into windows of event time (or
/// the caller's clock), each window emitted once as an aggregate record with
/// `{field}.{aggregate}` payload fields (see `docs/windows.md`).
///
/// Made by `edgepipe_window_new_from_json` or `_from_toml` from the `window` table
/// of a pipeline config, released by `edgepipe_window_free`. What it emits waits
/// inside it until taken with `edgepipe_window_take_aggregates` (or `_into`),
/// `_take_late` and `_take_rejected`. Time moves only when the caller says so
/// (`edgepipe_window_advance_to`, `edgepipe_window_flush`).
///
/// Thread safety: `edgepipe_window *` calls change it and need it to themselves;
/// `const edgepipe_window *` calls only read and may run on several threads at once.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_window {
    operator: WindowOperator,
    output: WindowOutput,
}

/// Counters of a window stage (gauges `series` and `open_windows` read now).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
pub struct edgepipe_window_counters {
    /// Records pushed.
    pub records_in: u64,
    /// Records that updated at least one window.
    pub records_aggregated: u64,
    /// Records without any aggregated field (ignored).
    pub records_ignored: u64,
    /// Records refused (on the rejected output).
    pub rejected: u64,
    /// Late records dropped.
    pub late_dropped: u64,
    /// Late records put on the late output.
    pub late_routed: u64,
    /// Windows emitted (first emissions).
    pub windows_emitted: u64,
    /// Revisions of emitted windows.
    pub revisions_emitted: u64,
    /// Series with state now.
    pub series: u64,
    /// Open windows now.
    pub open_windows: u64,
    /// Aggregate records emitted and not yet taken.
    pub aggregates_waiting: u64,
}

fn new_from(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut edgepipe_window,
    parse: fn(&str) -> edgepipe_core::Result<WindowConfig>,
) -> edgepipe_status {
    panic::status(|| {
        let config = ffi::try_str(config, config_len, "config")?;
        let out = Out::new(out, "out")?;
        let operator = parse(config)?.build()?;
        out.write(ffi::into_handle(edgepipe_window {
            operator,
            output: WindowOutput::new(),
        }));
        Ok(())
    })
}

/// Builds a window stage from a JSON config (the `window` table on its own, e.g.
/// `{"kind":"tumbling","size_seconds":60,"aggregates":["mean","max"]}`) and stores
/// it in `*out`. `EDGEPIPE_STATUS_CONFIG` names the offending key.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_new_from_json(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut edgepipe_window,
) -> edgepipe_status {
    new_from(config, config_len, out, WindowConfig::from_json_str)
}

/// Builds a window stage from a TOML config; as `edgepipe_window_new_from_json`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_new_from_toml(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut edgepipe_window,
) -> edgepipe_status {
    new_from(config, config_len, out, WindowConfig::from_toml_str)
}

/// Frees a window stage and whatever it had not emitted or handed out. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_free(window: *mut edgepipe_window) {
    panic::catch_or((), || ffi::free_handle(window));
}

/// Adds one reading (the record is copied). Windows it completes wait to be taken.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_push(
    window: *mut edgepipe_window,
    record: *const edgepipe_record,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        let record = ffi::try_ref(record, "record")?;
        window.operator.push(&record.record, &mut window.output);
        Ok(())
    })
}

/// Adds every record of a JSON Lines input. Lines that are not records do not stop
/// the rest: they are reported in `*out_errors` (a new buffer, as
/// `edgepipe_pipeline_process_jsonl`'s errors).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_push_jsonl(
    window: *mut edgepipe_window,
    input: *const u8,
    input_len: usize,
    out_errors: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        let input = ffi::try_slice(input, input_len, "input")?;
        let out_errors = Out::new(out_errors, "out_errors")?;
        let mut errors = Vec::new();
        for (line, parsed) in parse_jsonl(input) {
            match parsed {
                Ok(record) => window.operator.push(&record, &mut window.output),
                Err(error) => errors.push((line, error)),
            }
        }
        out_errors.write(ffi::into_handle(edgepipe_buffer::new(error_lines(errors))));
        Ok(())
    })
}

/// Moves the caller's clock to `now_unix_nanos` (it never goes back), closing the
/// windows it passed (processing time) and idle series' windows.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_advance_to(
    window: *mut edgepipe_window,
    now_unix_nanos: i64,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        window.operator.advance_to(
            Timestamp::from_unix_nanos(now_unix_nanos),
            &mut window.output,
        );
        Ok(())
    })
}

/// Emits every open window now (shutdown, or the end of a replay).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_flush(window: *mut edgepipe_window) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        window.operator.flush(&mut window.output);
        Ok(())
    })
}

/// Hands out the aggregate records emitted so far as JSON Lines in a new buffer
/// stored in `*out`, and forgets them.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_take_aggregates(
    window: *mut edgepipe_window,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        let out = Out::new(out, "out")?;
        let mut bytes = Vec::new();
        write_jsonl(
            &window.output.aggregates,
            &mut bytes,
            &JsonOptions::default(),
        )?;
        window.output.aggregates.clear();
        out.write(ffi::into_handle(edgepipe_buffer::new(bytes)));
        Ok(())
    })
}

/// As `edgepipe_window_take_aggregates`, into the caller's `buf` of `len` bytes
/// with the length in `*out_len`. When they do not fit, nothing is written or
/// forgotten, `*out_len` receives the size needed and the status is
/// `EDGEPIPE_STATUS_BUFFER_TOO_SMALL`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_take_aggregates_into(
    window: *mut edgepipe_window,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        buffer::to_caller(buf, len, out_len, |out| {
            Ok(write_jsonl(
                &window.output.aggregates,
                out,
                &JsonOptions::default(),
            )?)
        })?;
        window.output.aggregates.clear();
        Ok(())
    })
}

/// Hands out the late readings (late policy `output`) as JSON Lines in a new
/// buffer stored in `*out`, and forgets them.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_take_late(
    window: *mut edgepipe_window,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        let out = Out::new(out, "out")?;
        let mut bytes = Vec::new();
        write_jsonl(&window.output.late, &mut bytes, &JsonOptions::default())?;
        window.output.late.clear();
        out.write(ffi::into_handle(edgepipe_buffer::new(bytes)));
        Ok(())
    })
}

/// Hands out the refused readings as JSON Lines in a new buffer stored in `*out`,
/// one `{"reason":{"code":…,"field":…,"message":…},"record":{…}}` per line, and
/// forgets them. A NaN in a refused reading is written as null.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_take_rejected(
    window: *mut edgepipe_window,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_mut(window, "window")?;
        let out = Out::new(out, "out")?;
        let options = JsonOptions {
            non_finite: edgepipe_core::record::NonFinite::Null,
        };
        let mut bytes = Vec::new();
        for rejected in &window.output.rejected {
            let reason = serde_json::json!({
                "code": rejected.reason.code,
                "field": rejected.reason.field,
                "message": rejected.reason.message,
            });
            bytes.extend_from_slice(format!("{{\"reason\":{reason},\"record\":").as_bytes());
            rejected.record.write_json(&mut bytes, &options)?;
            bytes.extend_from_slice(b"}\n");
        }
        window.output.rejected.clear();
        out.write(ffi::into_handle(edgepipe_buffer::new(bytes)));
        Ok(())
    })
}

/// Stores the window stage's counters in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_stats(
    window: *const edgepipe_window,
    out: *mut edgepipe_window_counters,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_ref(window, "window")?;
        let out = Out::new(out, "out")?;
        let stats = window.operator.stats();
        out.write(edgepipe_window_counters {
            records_in: stats.records_in,
            records_aggregated: stats.records_aggregated,
            records_ignored: stats.records_ignored,
            rejected: stats.rejected,
            late_dropped: stats.late_dropped,
            late_routed: stats.late_routed,
            windows_emitted: stats.windows_emitted,
            revisions_emitted: stats.revisions_emitted,
            series: stats.series,
            open_windows: stats.open_windows,
            aggregates_waiting: window.output.aggregates.len() as u64,
        });
        Ok(())
    })
}

/// Every counter of the window stage as one JSON object (all of the core's
/// `WindowStats`, more than the struct carries) in a new buffer stored in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_window_stats_json(
    window: *const edgepipe_window,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let window = ffi::try_ref(window, "window")?;
        let out = Out::new(out, "out")?;
        let stats: WindowStats = window.operator.stats();
        let json = serde_json::to_vec(&stats).map_err(|error| {
            Failure::new(edgepipe_status::Internal, format!("window stats: {error}"))
        })?;
        out.write(ffi::into_handle(edgepipe_buffer::new(json)));
        Ok(())
    })
}
