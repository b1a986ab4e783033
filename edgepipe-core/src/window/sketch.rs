//! A DDSketch: quantiles with a relative-error guarantee, mergeable.
//!
//! Values are counted in logarithmic bins: bin `k` holds the values in
//! `(γ^(k-1), γ^k]` with `γ = (1 + α) / (1 - α)`, and a quantile is answered with
//! `2γ^k / (γ + 1)`, which is within a factor `1 ± α` of every value in the bin.
//! Negative values use a mirrored set of bins; values whose magnitude is below
//! `f64::MIN_POSITIVE` (zero and subnormals) are counted as zero.
//!
//! **Guarantee.** For `q` in `[0, 1]` and `n` values, [`Sketch::quantile`] returns
//! `v` with `|v - x| <= α·|x|`, where `x` is the value of rank `floor(q·(n-1))`
//! (0-based) in sorted order, as long as no bins were collapsed. Bins are
//! collapsed only when one sign's values span more than `max_bins` bins: with the
//! defaults (α = 1 %, 2048 bins) that is a ratio of about 10^17 between the
//! largest and smallest magnitude. Past it the lowest bins are merged (memory
//! stays bounded) and only the quantiles that fall in the collapsed range lose
//! the guarantee, as in the DDSketch paper (Masson et al., VLDB 2019).
//!
//! Merging two sketches with the same α gives exactly the sketch of all values.

use serde::{Deserialize, Serialize};

/// The default relative accuracy α of quantiles (1 %).
pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.01;
/// The default bound on bins per sign (2048 bins of 8 bytes: at most 32 KiB a sketch).
pub const DEFAULT_MAX_BINS: u32 = 2048;

/// A mergeable quantile sketch with relative accuracy α.
///
/// ```
/// use edgepipe_core::window::Sketch;
///
/// let mut sketch = Sketch::new(0.01, 2048);
/// for value in 1..=1000 {
///     sketch.add(f64::from(value));
/// }
/// let median = sketch.quantile(0.5).unwrap();
/// assert!((median - 500.0).abs() <= 0.01 * 500.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    alpha: f64,
    max_bins: u32,
    count: u64,
    zeros: u64,
    min: f64,
    max: f64,
    positive: Bins,
    negative: Bins,
}

/// Dense counts for a contiguous range of bin keys, starting at `offset`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Bins {
    offset: i64,
    counts: Vec<u64>,
}

impl Sketch {
    /// An empty sketch. `alpha` is clamped to `[1e-6, 0.5]` and `max_bins` to at
    /// least 16, so that no parameter can make the bins meaningless.
    pub fn new(alpha: f64, max_bins: u32) -> Self {
        let alpha = if alpha.is_finite() {
            alpha.clamp(1e-6, 0.5)
        } else {
            DEFAULT_RELATIVE_ACCURACY
        };
        Sketch {
            alpha,
            max_bins: max_bins.max(16),
            count: 0,
            zeros: 0,
            min: 0.0,
            max: 0.0,
            positive: Bins::default(),
            negative: Bins::default(),
        }
    }

    /// The relative accuracy α.
    pub fn relative_accuracy(&self) -> f64 {
        self.alpha
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn ln_gamma(&self) -> f64 {
        ((1.0 + self.alpha) / (1.0 - self.alpha)).ln()
    }

    fn key(&self, magnitude: f64) -> i64 {
        // |ln x| < 710 and ln γ >= 2e-6, so the quotient fits an i64 easily.
        (magnitude.ln() / self.ln_gamma()).ceil() as i64
    }

    /// Adds one value. NaN is ignored (callers filter it; a sketch must never be poisoned).
    pub fn add(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count = self.count.saturating_add(1);
        let magnitude = value.abs();
        if magnitude < f64::MIN_POSITIVE {
            self.zeros += 1;
        } else if magnitude.is_infinite() {
            // ln(inf) has no bin; the largest finite bin keeps the order right.
            let key = self.key(f64::MAX);
            let store = if value > 0.0 {
                &mut self.positive
            } else {
                &mut self.negative
            };
            store.add(key, 1, self.max_bins);
        } else {
            let key = self.key(magnitude);
            let store = if value > 0.0 {
                &mut self.positive
            } else {
                &mut self.negative
            };
            store.add(key, 1, self.max_bins);
        }
    }

    /// Adds every value counted by `other`. Sketches with different α cannot be
    /// merged exactly; `other`'s bins are then re-binned at their representative
    /// values, and the result keeps the larger of the two errors.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count = self.count.saturating_add(other.count);
        self.zeros = self.zeros.saturating_add(other.zeros);
        let same = self.alpha == other.alpha;
        for (store, theirs, sign) in [
            (&mut self.positive, &other.positive, 1.0),
            (&mut self.negative, &other.negative, -1.0),
        ] {
            for (index, &count) in theirs.counts.iter().enumerate() {
                if count == 0 {
                    continue;
                }
                let their_key = theirs.offset + index as i64;
                let key = if same {
                    their_key
                } else {
                    // The top bin's representative can round past f64::MAX;
                    // an infinite one would make a key no bin range can hold.
                    let value = sign * other.representative(their_key).min(f64::MAX);
                    (value.abs().ln() / ((1.0 + self.alpha) / (1.0 - self.alpha)).ln()).ceil()
                        as i64
                };
                store.add(key, count, self.max_bins);
            }
        }
    }

    /// The value `2γ^k / (γ + 1)` standing for bin `k` (positive magnitude).
    fn representative(&self, key: i64) -> f64 {
        let gamma = (1.0 + self.alpha) / (1.0 - self.alpha);
        // key * ln γ stays within ±710 for keys made from finite f64s.
        2.0 * (key as f64 * self.ln_gamma()).exp() / (gamma + 1.0)
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), `None` when empty or `q` is out of range.
    /// See the module documentation for the guarantee.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        // Ascending order: the most negative values first (negative bins from the
        // highest magnitude down), then zeros, then positive bins upwards.
        for (index, &count) in self.negative.counts.iter().enumerate().rev() {
            seen = seen.saturating_add(count);
            if seen > rank {
                let key = self.negative.offset + index as i64;
                return Some(self.clamp(-self.representative(key)));
            }
        }
        seen = seen.saturating_add(self.zeros);
        if seen > rank {
            return Some(0.0);
        }
        for (index, &count) in self.positive.counts.iter().enumerate() {
            seen = seen.saturating_add(count);
            if seen > rank {
                let key = self.positive.offset + index as i64;
                return Some(self.clamp(self.representative(key)));
            }
        }
        Some(self.max)
    }

    /// Whether the bins could have been made by [`Sketch::add`]: a restored
    /// snapshot is checked with this so that no crafted bin can overflow.
    pub(crate) fn is_sane(&self) -> bool {
        if !(self.alpha.is_finite() && (1e-6..=0.5).contains(&self.alpha) && self.max_bins >= 16) {
            return false;
        }
        // Keys of finite magnitudes: |ln x| < 710, so |key| ≤ 710 / ln γ, plus
        // rounding. A fixed bound (2^20) refused real sketches of small α
        // (α = 1e-5 puts 1e10 at key 1.15 million).
        let max_key = (710.0 / self.ln_gamma()).ceil() as i64 + 2;
        let bins_ok = |bins: &Bins| {
            bins.counts.len() <= self.max_bins as usize
                && (-max_key..=max_key).contains(&bins.offset)
                && bins.offset + bins.counts.len() as i64 <= max_key + 1
        };
        bins_ok(&self.positive) && bins_ok(&self.negative)
    }

    /// The sketch as compact text, for the state carried by aggregate records:
    /// `α/max_bins/zeros/min/max/positive/negative`, each bin set as
    /// `offset:count,count,…` (empty when it has no bins). Floats are written in
    /// their shortest round-trip form, so [`Sketch::decode`] gives back an
    /// equal sketch.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(48 + 4 * self.positive.counts.len());
        let mut floats = ryu::Buffer::new();
        let mut digits = itoa::Buffer::new();
        text.push_str(floats.format(self.alpha));
        text.push('/');
        text.push_str(digits.format(self.max_bins));
        text.push('/');
        text.push_str(digits.format(self.zeros));
        for float in [self.min, self.max] {
            text.push('/');
            text.push_str(floats.format(float));
        }
        for bins in [&self.positive, &self.negative] {
            text.push('/');
            if bins.counts.is_empty() {
                continue;
            }
            text.push_str(digits.format(bins.offset));
            text.push(':');
            for (index, count) in bins.counts.iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                text.push_str(digits.format(*count));
            }
        }
        text
    }

    /// Reads a sketch written by [`Sketch::encode`]; `None` when the text is
    /// malformed or describes bins [`Sketch::add`] could not have made (more
    /// than `max_bins_limit` bins, keys out of range, a non-finite bound).
    pub fn decode(text: &str, max_bins_limit: u32) -> Option<Sketch> {
        let mut parts = text.split('/');
        let alpha: f64 = parts.next()?.parse().ok()?;
        let max_bins: u32 = parts.next()?.parse().ok()?;
        let zeros: u64 = parts.next()?.parse().ok()?;
        let min: f64 = parts.next()?.parse().ok()?;
        let max: f64 = parts.next()?.parse().ok()?;
        if max_bins > max_bins_limit || min.is_nan() || max.is_nan() || min > max {
            return None;
        }
        let mut bins = [Bins::default(), Bins::default()];
        for slot in &mut bins {
            let part = parts.next()?;
            if part.is_empty() {
                continue;
            }
            let (offset, counts) = part.split_once(':')?;
            slot.offset = offset.parse().ok()?;
            for count in counts.split(',') {
                if slot.counts.len() >= max_bins as usize {
                    return None;
                }
                slot.counts.push(count.parse().ok()?);
            }
        }
        if parts.next().is_some() {
            return None;
        }
        let [positive, negative] = bins;
        let count = [&positive, &negative]
            .iter()
            .flat_map(|bins| bins.counts.iter())
            .try_fold(zeros, |total, &count| total.checked_add(count))?;
        let sketch = Sketch {
            alpha,
            max_bins,
            count,
            zeros,
            min,
            max,
            positive,
            negative,
        };
        (sketch.is_sane() && (count == 0 || (min.is_finite() && max.is_finite()))).then_some(sketch)
    }

    /// The true quantile lies within `[min, max]`, so clamping never adds error.
    fn clamp(&self, value: f64) -> f64 {
        value.clamp(self.min, self.max)
    }
}

impl Bins {
    fn add(&mut self, key: i64, count: u64, max_bins: u32) {
        if self.counts.is_empty() {
            self.offset = key;
            self.counts.push(count);
            return;
        }
        let max_bins = i64::from(max_bins);
        let current_high = self.offset + self.counts.len() as i64 - 1;
        let high = current_high.max(key);
        // Collapse the lowest bins rather than grow past the bound.
        let low = self.offset.min(key).max(high - max_bins + 1);
        if low != self.offset || high != current_high {
            let mut counts = vec![0u64; (high - low + 1) as usize];
            for (index, &old) in self.counts.iter().enumerate() {
                let old_key = (self.offset + index as i64).max(low);
                let slot = &mut counts[(old_key - low) as usize];
                *slot = slot.saturating_add(old);
            }
            self.offset = low;
            self.counts = counts;
        }
        let index = (key.max(low) - low) as usize;
        if let Some(slot) = self.counts.get_mut(index) {
            *slot = slot.saturating_add(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        values[(q * (values.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_of_mixed_signs_are_within_the_bound() {
        let mut values: Vec<f64> = (-500..=1500).map(|v| f64::from(v) * 0.37).collect();
        let mut sketch = Sketch::new(0.01, 2048);
        for &value in &values {
            sketch.add(value);
        }
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0] {
            let truth = exact(&mut values, q);
            let estimate = sketch.quantile(q).unwrap();
            assert!(
                (estimate - truth).abs() <= 0.01 * truth.abs() + 1e-12,
                "q={q}: {estimate} vs {truth}"
            );
        }
        assert_eq!(sketch.quantile(1.5), None);
        assert_eq!(Sketch::new(0.01, 64).quantile(0.5), None);
    }

    #[test]
    fn encoding_round_trips_and_refuses_malformed_text() {
        let mut sketch = Sketch::new(0.01, 2048);
        for value in [-3.5, -0.001, 0.0, 0.0, 1e-300, 2.0, 2.0, 1e12] {
            sketch.add(value);
        }
        let text = sketch.encode();
        assert_eq!(Sketch::decode(&text, 2048), Some(sketch.clone()));
        let empty = Sketch::new(0.02, 64);
        assert_eq!(Sketch::decode(&empty.encode(), 2048), Some(empty));
        assert_eq!(Sketch::decode(&text, 100), None, "more bins than allowed");
        // The smallest α puts ordinary values at keys in the millions.
        let mut fine = Sketch::new(1e-6, 64);
        fine.add(1e10);
        fine.add(-f64::MAX);
        assert_eq!(Sketch::decode(&fine.encode(), 64), Some(fine));
        for bad in [
            "",
            "0.01/2048/0/1/0//",
            "0.01/2048/0/1/2/x:1/",
            "0.01/2048/0/1/2/0:1//",
            "0.9/2048/0/1/2/0:1/",
            "0.01/2048/0/1/2/99999999:1/",
            "0.01/2048/0/1/2/-9223372036854775807:1/",
            "0.01/2048/18446744073709551615/1/2/0:1/",
        ] {
            assert_eq!(Sketch::decode(bad, 2048), None, "{bad}");
        }
    }

    #[test]
    fn bins_stay_bounded_when_values_span_a_huge_range() {
        let mut sketch = Sketch::new(0.01, 64);
        for exponent in -300..300 {
            sketch.add(10f64.powi(exponent));
        }
        assert!(sketch.positive.counts.len() <= 64);
        assert_eq!(sketch.count(), 600);
        // The top quantile is still within the bound.
        let top = sketch.quantile(1.0).unwrap();
        assert!((top - 1e299).abs() <= 0.01 * 1e299);
    }
}
