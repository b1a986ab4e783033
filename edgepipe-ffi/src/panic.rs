//! The panic boundary: no panic unwinds into C.
//!
//! Every exported function runs its body through [`status`] (or [`catch_or`] when it
//! returns something other than a status), so a panic becomes
//! `EDGEPIPE_STATUS_PANIC` with its message kept as the last error.
//!
//! With `panic = "abort"` (the `firmware` profile) there is nothing to catch: a panic
//! aborts the process, which is that profile's trade for size.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Failure, edgepipe_status};

/// Runs `body`; an `Err` or a panic is kept as the thread's last error and its status returned.
pub(crate) fn status(body: impl FnOnce() -> Result<(), Failure>) -> edgepipe_status {
    // AssertUnwindSafe: after a panic the handle the call was working on may be half
    // updated. `EDGEPIPE_STATUS_PANIC` tells the caller to free it and not use it
    // again, which is what makes observing it afterwards impossible.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => edgepipe_status::Ok,
        Ok(Err(failure)) => failure.record(),
        Err(payload) => panic_failure(payload.as_ref()).record(),
    }
}

/// Runs `body`, returning `on_panic` if it panics; for functions with no status to
/// return (getters, `_free`) and for `edgepipe_error_message`, which must not replace
/// the last error.
pub(crate) fn catch_or<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    // AssertUnwindSafe: as in `status`.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

fn panic_failure(payload: &(dyn Any + Send)) -> Failure {
    let detail = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    Failure::new(
        edgepipe_status::Panic,
        format!("edgepipe panicked (a bug; please report it): {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_with_its_message() {
        // The default hook prints the panic; the test harness captures it.
        assert_eq!(
            status(|| panic!("stage {} exploded", 3)),
            edgepipe_status::Panic
        );
        assert_eq!(catch_or(7, || -> i32 { panic!("getter") }), 7);

        let mut buf = [0u8; 256];
        let mut written = 0;
        let copied =
            crate::error::edgepipe_error_message(buf.as_mut_ptr().cast(), buf.len(), &mut written);
        assert_eq!(copied, edgepipe_status::Ok);
        let message = std::ffi::CStr::from_bytes_until_nul(&buf).unwrap();
        assert_eq!(message.to_bytes().len(), written);
        assert!(
            message.to_str().unwrap().contains("stage 3 exploded"),
            "{message:?}"
        );
    }
}
