//! Casting and ownership helpers: the only code that turns C pointers into Rust
//! references, boxes and slices.
//!
//! C has no `unsafe`, so the exported functions are plain `extern "C" fn`s and the
//! contract every C caller accepts is stated once, here and in the header:
//!
//! - a pointer argument is NULL (refused with `EDGEPIPE_STATUS_NULL_ARGUMENT`, or
//!   ignored by a `_free`) or valid for what its type says for the whole call;
//! - a handle was returned by its `_new` and has not been passed to its `_free`;
//!   a `T *` handle is not used by another thread during the call, a `const T *`
//!   one is not mutated during the call;
//! - a `(pointer, length)` pair covers `length` readable (or, for outputs, writable)
//!   bytes, which do not overlap any other argument;
//! - an output pointer (`T **out`, `size_t *out`, …) points at storage for one `T`;
//!   it is written once, at the end, and only when the call succeeds.
//!
//! The helpers below are safe to call from Rust only under that contract, which is
//! why they are `pub(crate)` and used by nothing but the exported functions.

use std::ffi::c_char;
use std::ptr::NonNull;

use crate::error::{Failure, edgepipe_status};

/// Borrows a `const T *` handle, refusing NULL.
pub(crate) fn try_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: by the module contract a non-NULL handle points at a live `T` created
    // by its `_new`, not mutated during this call; `as_ref` maps NULL to `None`.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null_argument(name))
}

/// Borrows a `T *` handle mutably, refusing NULL.
pub(crate) fn try_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: by the module contract a non-NULL handle points at a live `T` created
    // by its `_new` that no other thread uses during this call, so the reference is
    // unique; `as_mut` maps NULL to `None`.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null_argument(name))
}

/// Borrows `len` bytes at `ptr`. `(NULL, 0)` is the empty slice; NULL with a
/// length is refused.
pub(crate) fn try_slice<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null_argument(name));
    }
    // SAFETY: by the module contract `ptr` covers `len` readable bytes that do not
    // change during the call (so `len` also fits in `isize`); it is not NULL.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` bytes at `ptr` as UTF-8 text.
pub(crate) fn try_str<'a>(ptr: *const c_char, len: usize, name: &str) -> Result<&'a str, Failure> {
    let bytes = try_slice(ptr.cast(), len, name)?;
    std::str::from_utf8(bytes).map_err(|error| {
        Failure::new(
            edgepipe_status::InvalidUtf8,
            format!("argument `{name}` is not UTF-8: {error}"),
        )
    })
}

/// An output argument, checked for NULL before any work so that a call that fails
/// leaves every output untouched, and written once at the end.
#[derive(Debug)]
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    pub(crate) fn new(ptr: *mut T, name: &str) -> Result<Self, Failure> {
        NonNull::new(ptr)
            .map(Out)
            .ok_or_else(|| Failure::null_argument(name))
    }

    pub(crate) fn write(self, value: T) {
        // SAFETY: by the module contract a non-NULL output pointer points at writable
        // storage for one `T`. `write` neither reads nor drops what was there, which
        // may be uninitialised (`edgepipe_pipeline *p;` in C).
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Moves `value` to the heap and hands its ownership to C as an opaque handle.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back ownership of a handle from [`into_handle`] and drops it; NULL is ignored.
pub(crate) fn free_handle<T>(ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: by the module contract a non-NULL pointer given to a `_free` came from
    // `into_handle::<T>` (through the matching `_new`) and is not used afterwards.
    drop(unsafe { Box::from_raw(ptr) });
}

/// Copies `text` into the caller's `len` bytes at `buf` with a terminating NUL,
/// cutting it at a character boundary when it does not fit. Returns the bytes
/// written without the NUL and whether all of `text` fitted.
pub(crate) fn write_c_string(
    buf: *mut c_char,
    len: usize,
    text: &str,
) -> Result<(usize, bool), Failure> {
    let buf = NonNull::new(buf).ok_or_else(|| Failure::null_argument("buf"))?;
    let Some(room) = len.checked_sub(1) else {
        return Ok((0, text.is_empty()));
    };
    let mut count = text.len().min(room);
    while !text.is_char_boundary(count) {
        count -= 1;
    }
    // SAFETY: by the module contract `buf` covers `len` writable bytes that do not
    // overlap `text` (which edgepipe owns); `count + 1 <= len` bytes are written.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.as_ptr().cast::<u8>(), count);
        buf.as_ptr().add(count).write(0);
    }
    Ok((count, count == text.len()))
}
