//! # edgepipe-ffi
//!
//! The C ABI of edgepipe: `libedgepipe.a` and the header `include/edgepipe.h`,
//! generated from this crate by cbindgen and committed.
//!
//! The guide is `docs/c.md`. The objects, in the order data flows:
//!
//! | handle | module | what it is |
//! | --- | --- | --- |
//! | `edgepipe_record` | `record` | one reading, built field by field without JSON |
//! | `edgepipe_pipeline` | `pipeline` | transforms from a JSON/TOML config, per record or over JSON Lines |
//! | `edgepipe_window` | `window` | a window stage: readings in, aggregate records out |
//! | `edgepipe_batcher`, `edgepipe_batch` | `batch` | batches in every codec and compression, their envelope and bytes |
//! | `edgepipe_queue`, `edgepipe_queue_entry` | `queue` | the durable queue, a memory queue, or one written in C (`callback_queue`) |
//! | `edgepipe_delivery` | `delivery` | the delivery worker (feature `delivery`) |
//! | `edgepipe_buffer` | `buffer` | bytes edgepipe produced, owned by the caller |
//!
//! ## Conventions
//!
//! - Every symbol is `edgepipe_<object>_<verb>`, and the C type names are the Rust
//!   type names (`edgepipe_pipeline`, `edgepipe_buffer`, `edgepipe_status`).
//! - Objects are opaque handles made by `_new_*` and released by `_free`, which
//!   accepts NULL.
//! - Fallible calls return an `edgepipe_status`: 0 for success, fixed grouped
//!   numbers otherwise. The message of the calling thread's last failure is copied
//!   out by `edgepipe_error_message`.
//! - Inputs come first, outputs last; outputs are written only on success. Byte
//!   buffers always travel with their length; text is UTF-8 and needs no NUL.
//! - No panic crosses into C: it becomes `EDGEPIPE_STATUS_PANIC`.
//! - Each handle's documentation says what may be done with it from several threads.
//! - Handles are recorded while live: a freed, foreign or unknown handle is
//!   `EDGEPIPE_STATUS_INVALID_HANDLE`, not a crash.
//! - Output that fits a caller's buffer can be written there (`buf`, `len`,
//!   `*out_len`, with `EDGEPIPE_STATUS_BUFFER_TOO_SMALL` and the size needed), or
//!   handed out as an `edgepipe_buffer`.
//!
//! ## Linking
//!
//! Link `libedgepipe.a` by its path (with both `.a` and `.so` in one directory,
//! `-L… -ledgepipe` picks the shared one) and the system libraries the Rust
//! standard library needs, as printed by
//! `cargo rustc -p edgepipe-ffi --lib --crate-type staticlib -- --print native-static-libs`:
//!
//! ```text
//! cc -std=c11 -I edgepipe-ffi/include app.c target/release/libedgepipe.a \
//!     -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
//! ```
//!
//! glibc 2.34 and later link without most of them; older toolchains and firmware
//! SDKs need them all. `tests/c_programs.rs` links exactly this list.
//!
//! ## Features
//!
//! - `zstd` (default): zstd compression, with libzstd compiled in.
//! - `delivery`: `edgepipe_delivery_*`, the core's delivery worker with its HTTP and
//!   MQTT sinks; declared in the header under `#if defined(EDGEPIPE_DELIVERY)`.
//!
//! ## Layout
//!
//! All raw-pointer handling lives in two private modules, so every exported
//! function reads as ordinary Rust: `ffi` (borrowing pointers, owning handles,
//! writing outputs) and `panic` (the panic boundary).

// Private: the C symbols are exported by `#[unsafe(no_mangle)]` whatever the module's
// visibility, and the rlib offers no Rust API built on the C pointer contract.
mod batch;
mod buffer;
mod callback_queue;
#[cfg(feature = "delivery")]
mod delivery;
mod error;
mod ffi;
mod panic;
mod pipeline;
mod queue;
mod record;
#[cfg(feature = "uniffi")]
pub mod uniffi_api;
mod window;

// uniffi's scaffolding (the exported `uniffi_edgepipe_*` symbols and the metadata
// the bindings are generated from), only with the feature: the C library carries none of it.
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("edgepipe");

use std::ffi::{CStr, c_char};

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the package version holds a NUL"),
    };

/// The library's version, e.g. `"0.1.0"`: a static NUL-terminated string that is
/// never freed. Compare with `EDGEPIPE_VERSION` to check that the header and the
/// library match.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_version() -> *const c_char {
    panic::catch_or(std::ptr::null(), || VERSION.as_ptr())
}
