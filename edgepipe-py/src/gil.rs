//! The one way calls into the core release the GIL.

use pyo3::Python;
use pyo3::marker::Ungil;

/// Runs `work` with the GIL released, so other Python threads run meanwhile.
///
/// Every call that does real work in the core goes through here. `work` cannot touch
/// Python objects (the `Ungil` bound forbids it); take what it needs out of them
/// first (`&[u8]` borrowed from an immutable `bytes` is fine) and build the Python
/// results after it returns.
pub(crate) fn without_gil<T, F>(py: Python<'_>, work: F) -> T
where
    F: Ungil + FnOnce() -> T,
    T: Ungil,
{
    py.detach(work)
}
