//! A log-linear latency histogram in the style of HdrHistogram: exact below 256 µs, then
//! 128 buckets per power of two (every value is within 0.8 % of its bucket's bounds). Fixed
//! memory, O(1) record, and histograms of several threads merge by adding counts.

/// Values below `2^PRECISION_BITS` get a bucket each.
const PRECISION_BITS: u32 = 8;
const LINEAR: u64 = 1 << PRECISION_BITS;
const HALF: u64 = LINEAR / 2;
/// Largest value kept apart: 2^40 µs is 12 days; larger values count as this.
const MAX_VALUE: u64 = (1 << 40) - 1;

fn bucket_of(v: u64) -> usize {
    let v = v.min(MAX_VALUE);
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - (PRECISION_BITS - 1);
    (u64::from(shift) * HALF + (v >> shift)) as usize
}

/// The largest value that lands in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = i / HALF - 1;
    let m = i - shift * HALF;
    ((m + 1) << shift) - 1
}

/// Counts of values (microseconds), with exact min, max and sum.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; bucket_of(MAX_VALUE) + 1],
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at percentile `p` (0 to 100): the upper bound of the bucket holding it, never
    /// above the largest value recorded. 0 when empty.
    ///
    /// ```
    /// let mut h = wschat_bench::histogram::Histogram::new();
    /// for v in 1..=100 { h.record(v); }
    /// assert_eq!(h.percentile(50.0), 50);
    /// assert_eq!(h.percentile(100.0), 100);
    /// ```
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut prev_high = None;
        for i in 0..bucket_of(MAX_VALUE) {
            let high = bucket_high(i);
            if let Some(p) = prev_high {
                assert_eq!(
                    bucket_of(p + 1),
                    i,
                    "value {} should start bucket {i}",
                    p + 1
                );
            }
            assert_eq!(bucket_of(high), i);
            prev_high = Some(high);
        }
    }

    #[test]
    fn relative_error_is_under_one_percent() {
        for v in [1u64, 255, 256, 257, 1000, 12_345, 999_999, 100_000_000] {
            let high = bucket_high(bucket_of(v));
            assert!(high >= v);
            assert!((high - v) as f64 <= v as f64 * 0.008, "v={v} high={high}");
        }
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=10_000 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 10_000);
        for (p, want) in [(50.0, 5000.0), (90.0, 9000.0), (99.0, 9900.0)] {
            let got = h.percentile(p) as f64;
            assert!((got - want).abs() / want < 0.01, "p{p}: {got}");
        }
        assert!((h.mean() - 5000.5).abs() < 1e-9);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1_000_000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!((a.min(), a.max()), (10, 1_000_000));
        assert_eq!(a.percentile(50.0), 20);
        assert_eq!(a.percentile(100.0), 1_000_000);
    }

    #[test]
    fn empty_and_huge() {
        let mut h = Histogram::new();
        assert_eq!((h.percentile(99.0), h.min(), h.max()), (0, 0, 0));
        h.record(u64::MAX);
        // Values past the last bucket count in it; the exact maximum is still kept.
        assert_eq!(h.percentile(50.0), bucket_high(bucket_of(MAX_VALUE)));
        assert_eq!(h.max(), u64::MAX);
    }
}
