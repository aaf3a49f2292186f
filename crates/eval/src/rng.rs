//! A small seeded generator for choosing subsets: SplitMix64 (Steele, Lea and Flood 2014), so
//! that a KID or a reservoir of features is the same for the same seed on every machine.

/// SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`), by rejection, so without modulo bias.
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        let bound = bound as u64;
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let value = self.next_u64();
            if value < zone {
                return (value % bound) as usize;
            }
        }
    }

    /// `count` distinct indices of `0..n`, in random order (a partial Fisher–Yates shuffle).
    pub(crate) fn subset(&mut self, n: usize, count: usize) -> Vec<usize> {
        let mut indices: Vec<usize> = (0..n).collect();
        for i in 0..count.min(n) {
            let j = i + self.below(n - i);
            indices.swap(i, j);
        }
        indices.truncate(count.min(n));
        indices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_distinct_and_seeded() {
        let mut rng = SplitMix::new(3);
        let subset = rng.subset(100, 30);
        let mut sorted = subset.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 30);
        assert!(sorted.iter().all(|&i| i < 100));
        assert_eq!(SplitMix::new(3).subset(100, 30), subset);
        assert_ne!(SplitMix::new(4).subset(100, 30), subset);
    }
}
