//! Window kinds and which windows a timestamp belongs to.
//!
//! Times are nanoseconds since the Unix epoch (`i64`); every computation is
//! checked, and a timestamp whose window would fall outside the `i64` range is
//! refused by the operator rather than wrapped.

use serde::{Deserialize, Serialize};

/// How readings of one series are grouped into windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    /// Fixed, epoch-aligned, non-overlapping windows `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window length in nanoseconds (> 0).
        size: i64,
    },
    /// Overlapping windows of `size` starting every `hop` (epoch-aligned): a
    /// reading belongs to `ceil(size / hop)` windows.
    Hopping {
        /// Window length in nanoseconds (> 0).
        size: i64,
        /// Distance between window starts in nanoseconds (0 < hop ≤ size).
        hop: i64,
    },
    /// Activity sessions: readings less than `gap` apart share a window, which
    /// runs from the first reading to the last reading plus `gap`.
    Session {
        /// Inactivity that ends a session, in nanoseconds (> 0).
        gap: i64,
    },
    /// Every `count` readings of a series, in arrival order.
    Count {
        /// Readings per window (> 0).
        count: u64,
    },
}

impl WindowKind {
    /// The config name: `tumbling`, `hopping`, `session` or `count`.
    pub fn name(&self) -> &'static str {
        match self {
            WindowKind::Tumbling { .. } => "tumbling",
            WindowKind::Hopping { .. } => "hopping",
            WindowKind::Session { .. } => "session",
            WindowKind::Count { .. } => "count",
        }
    }

    /// True for kinds whose windows are fixed intervals of event time (the ones
    /// that can be revised by late readings).
    pub fn is_time_aligned(&self) -> bool {
        matches!(
            self,
            WindowKind::Tumbling { .. } | WindowKind::Hopping { .. }
        )
    }

    /// Calls `each(start, end)` for every aligned window containing `time`, in
    /// ascending start order. Returns false (and calls nothing) when a window
    /// would fall outside the `i64` range. Sessions and counts have no aligned
    /// windows and return true without calling.
    pub(crate) fn aligned_windows(&self, time: i64, mut each: impl FnMut(i64, i64)) -> bool {
        let (size, hop) = match *self {
            WindowKind::Tumbling { size } => (size, size),
            WindowKind::Hopping { size, hop } => (size, hop),
            _ => return true,
        };
        let Some(last_start) = time.div_euclid(hop).checked_mul(hop) else {
            return false;
        };
        // Every window containing `time` starts in (time - size, last_start].
        let Some(first_bound) = time.checked_sub(size) else {
            return false;
        };
        if last_start.checked_add(size).is_none() {
            return false;
        }
        let mut starts = 0usize;
        let mut start = last_start;
        while start > first_bound {
            starts += 1;
            match start.checked_sub(hop) {
                Some(previous) => start = previous,
                None => return false,
            }
        }
        if starts == 0 {
            return true;
        }
        // Every start lies in (first_bound, last_start], so none of this overflows.
        let first = last_start - (starts as i64 - 1) * hop;
        for index in 0..starts as i64 {
            let start = first + index * hop;
            each(start, start + size);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(kind: WindowKind, time: i64) -> Option<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        kind.aligned_windows(time, |start, end| out.push((start, end)))
            .then_some(out)
    }

    #[test]
    fn tumbling_windows_are_epoch_aligned_also_before_the_epoch() {
        let kind = WindowKind::Tumbling { size: 10 };
        assert_eq!(windows(kind, 0), Some(vec![(0, 10)]));
        assert_eq!(windows(kind, 19), Some(vec![(10, 20)]));
        assert_eq!(windows(kind, -1), Some(vec![(-10, 0)]));
        assert_eq!(windows(kind, i64::MIN), None);
        assert_eq!(windows(kind, i64::MAX), None);
    }

    #[test]
    fn hopping_windows_cover_each_time_size_over_hop_times() {
        let kind = WindowKind::Hopping { size: 10, hop: 5 };
        assert_eq!(windows(kind, 7), Some(vec![(0, 10), (5, 15)]));
        assert_eq!(windows(kind, 10), Some(vec![(5, 15), (10, 20)]));
        let kind = WindowKind::Hopping { size: 10, hop: 3 };
        // Starts 0, 3, 6, 9 contain 9; -3 does not (ends at 7).
        assert_eq!(
            windows(kind, 9),
            Some(vec![(0, 10), (3, 13), (6, 16), (9, 19)])
        );
    }
}
