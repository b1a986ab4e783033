//! `edgepipe_buffer`: bytes that edgepipe produced and the caller now owns.

use crate::ffi;
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
