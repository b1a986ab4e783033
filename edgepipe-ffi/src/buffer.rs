//! `edgepipe_buffer`: bytes that edgepipe produced and the caller now owns.

use crate::error::{Failure, edgepipe_status};
use crate::ffi::{self, Out};
use crate::panic;

/// Bytes produced by edgepipe (JSON Lines output, a report), owned by the caller
/// until `edgepipe_buffer_free`. Read them with `edgepipe_buffer_data` and
/// `edgepipe_buffer_len`; they are not NUL-terminated.
///
/// Thread safety: a buffer is never changed after it is returned, so it may be read
/// from several threads at once, and freed from any one thread once they are done.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_buffer {
    bytes: Vec<u8>,
}

impl edgepipe_buffer {
    /// Wraps `bytes` without copying.
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        edgepipe_buffer { bytes }
    }
}

/// The buffer's first byte, valid until `edgepipe_buffer_free`; NULL if `buffer` is
/// NULL. With a length of 0 the pointer is not NULL but must not be read.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_buffer_data(buffer: *const edgepipe_buffer) -> *const u8 {
    panic::catch_or(std::ptr::null(), || {
        ffi::try_ref(buffer, "buffer").map_or(std::ptr::null(), |buffer| buffer.bytes.as_ptr())
    })
}

/// The buffer's length in bytes; 0 if `buffer` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_buffer_len(buffer: *const edgepipe_buffer) -> usize {
    panic::catch_or(0, || {
        ffi::try_ref(buffer, "buffer").map_or(0, |buffer| buffer.bytes.len())
    })
}

/// Frees a buffer returned by edgepipe. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_buffer_free(buffer: *mut edgepipe_buffer) {
    panic::catch_or((), || ffi::free_handle(buffer));
}

thread_local! {
    // Output written for a caller's buffer is made here first, so a thread that
    // encodes into its own buffer again and again allocates once, not per call.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Scratch capacity kept between calls; one huge output does not pin its memory.
const SCRATCH_KEEP: usize = 1 << 20;

/// Produces bytes with `produce` and copies them into the caller's `len` bytes at
/// `buf`, storing their count in `*out_len`.
///
/// When they do not fit, nothing is copied, `*out_len` receives the size needed and
/// the status is `EDGEPIPE_STATUS_BUFFER_TOO_SMALL` (the one output a failed call
/// writes: it is the answer to the failure). `(NULL, 0)` asks for the size alone.
pub(crate) fn to_caller(
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
    produce: impl FnOnce(&mut Vec<u8>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let out_len = Out::new(out_len, "out_len")?;
    if buf.is_null() && len > 0 {
        return Err(Failure::null_argument("buf"));
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let result = produce(scratch).and_then(|()| {
            let needed = scratch.len();
            if needed > len {
                out_len.write(needed);
                return Err(Failure::new(
                    edgepipe_status::BufferTooSmall,
                    format!("the buffer holds {len} bytes; {needed} are needed"),
                ));
            }
            ffi::copy_to_caller(scratch, buf, len)?;
            out_len.write(needed);
            Ok(())
        });
        if scratch.capacity() > SCRATCH_KEEP {
            *scratch = Vec::new();
        }
        result
    })
}
