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
//!
//! One part of the contract is checked rather than trusted: every handle edgepipe
//! hands out is recorded (address and type) until its `_free`, and a handle
//! argument that is not recorded (freed already, of another type, or never made by
//! edgepipe) is refused with `EDGEPIPE_STATUS_INVALID_HANDLE` before it is read.
//! That turns the common C mistakes, a double free and a use after free, into a
//! status instead of memory corruption, for the price of one uncontended lock per
//! call. It cannot catch a freed handle whose address a new handle of the same
//! type has since taken.

use std::any::TypeId;
use std::collections::BTreeSet;
use std::ffi::c_char;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Failure, edgepipe_status};

/// The live handles: address and type of every `into_handle` not yet freed.
/// Const-initialised, so no constructor runs before `main`.
static LIVE: Mutex<BTreeSet<(usize, TypeId)>> = Mutex::new(BTreeSet::new());

fn live() -> MutexGuard<'static, BTreeSet<(usize, TypeId)>> {
    // The set stays consistent whatever panicked while it was held.
    LIVE.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The C name of a handle type (`edgepipe_record`), for messages.
fn handle_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

fn check_live<T: 'static>(ptr: *const T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::null_argument(name));
    }
    if live().contains(&(ptr as usize, TypeId::of::<T>())) {
        Ok(())
    } else {
        Err(Failure::new(
            edgepipe_status::InvalidHandle,
            format!(
                "argument `{name}` is not a live {} (freed already, or not made by edgepipe)",
                handle_name::<T>()
            ),
        ))
    }
}

/// Borrows a `const T *` handle, refusing NULL and handles that are not live.
pub(crate) fn try_ref<'a, T: 'static>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    check_live(ptr, name)?;
    // SAFETY: by the module contract a live handle points at a `T` created by its
    // `_new`, not mutated during this call; it is not NULL (checked above).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null_argument(name))
}

/// Borrows a `T *` handle mutably, refusing NULL and handles that are not live.
pub(crate) fn try_mut<'a, T: 'static>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    check_live(ptr, name)?;
    // SAFETY: by the module contract a live handle points at a `T` created by its
    // `_new` that no other thread uses during this call, so the reference is unique.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null_argument(name))
}

/// Borrows a plain C struct passed by pointer (options, callbacks), refusing NULL.
pub(crate) fn try_input<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: by the module contract a non-NULL pointer points at an initialised `T`
    // that does not change during this call; `as_ref` maps NULL to `None`.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null_argument(name))
}

/// A plain C struct passed by pointer where NULL means "the defaults".
pub(crate) fn input_or_default<T: Clone + Default>(ptr: *const T) -> T {
    // SAFETY: as `try_input`.
    unsafe { ptr.as_ref() }.cloned().unwrap_or_default()
}

/// Copies `bytes` into the caller's `len` writable bytes at `buf`, which the
/// caller has checked are enough.
pub(crate) fn copy_to_caller(bytes: &[u8], buf: *mut u8, len: usize) -> Result<(), Failure> {
    if bytes.is_empty() {
        return Ok(());
    }
    let buf = NonNull::new(buf).ok_or_else(|| Failure::null_argument("buf"))?;
    assert!(
        bytes.len() <= len,
        "copy_to_caller: the caller checks the room"
    );
    // SAFETY: by the module contract `buf` covers `len >= bytes.len()` writable
    // bytes that do not overlap `bytes` (edgepipe's own memory).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.as_ptr(), bytes.len()) };
    Ok(())
}

// SAFETY: the callbacks' contract (stated on `edgepipe_queue_callbacks` in the
// header) is that they may be called from any thread, one at a time; edgepipe
// makes every call under the queue's mutex, so `ctx` is never used by two threads
// at once.
unsafe impl Send for crate::callback_queue::edgepipe_queue_callbacks {}
// SAFETY: as above; `&edgepipe_queue_callbacks` only reads the function pointers.
unsafe impl Sync for crate::callback_queue::edgepipe_queue_callbacks {}

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
pub(crate) fn into_handle<T: 'static>(value: T) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    live().insert((ptr as usize, TypeId::of::<T>()));
    ptr
}

/// Takes back ownership of a handle from [`into_handle`] and drops it; NULL is
/// ignored, and so is a handle that is not live (a double free), which is kept as
/// the thread's last error (`EDGEPIPE_STATUS_INVALID_HANDLE`).
pub(crate) fn free_handle<T: 'static>(ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    if !live().remove(&(ptr as usize, TypeId::of::<T>())) {
        let _ = check_live(ptr, "handle").map_err(Failure::record);
        return;
    }
    // SAFETY: the handle was live, so it came from `into_handle::<T>` (through the
    // matching `_new`), and it is no longer recorded, so nothing frees it twice.
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
