//! Seeded randomness for sessions: which items are sampled (optionally stratified), the
//! order each annotator sees them in, and which version sits on the left. SplitMix64:
//! tiny, fast and the same on every machine, so a seed reproduces a session exactly.

use std::collections::BTreeMap;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A stream of its own for `label` (e.g. an annotator's name).
    pub fn derived(seed: u64, label: &str) -> Self {
        Self(seed ^ xxhash_rust::xxh3::xxh3_64(label.as_bytes()))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias worth mentioning at these sizes.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// `size` of the indices `0..strata.len()`, in ascending order. With strata, each
/// stratum gets its proportional share (largest remainder), then a seeded draw inside.
pub fn sample(strata: &[Option<String>], size: usize, seed: u64, stratified: bool) -> Vec<usize> {
    let n = strata.len();
    if size >= n {
        return (0..n).collect();
    }
    let mut rng = Rng::new(seed);
    let mut picked = if stratified {
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, s) in strata.iter().enumerate() {
            groups
                .entry(s.as_deref().unwrap_or(""))
                .or_default()
                .push(i);
        }
        let quota: Vec<(f64, usize)> = groups
            .values()
            .map(|g| {
                let exact = g.len() as f64 * size as f64 / n as f64;
                (exact, exact.floor() as usize)
            })
            .collect();
        let mut take: Vec<usize> = quota.iter().map(|q| q.1).collect();
        let mut left = size - take.iter().sum::<usize>();
        // Largest remainders first; ties go to the earlier stratum (sorted by name).
        let mut order: Vec<usize> = (0..quota.len()).collect();
        order.sort_by(|a, b| {
            let (ra, rb) = (
                quota[*a].0 - quota[*a].1 as f64,
                quota[*b].0 - quota[*b].1 as f64,
            );
            rb.partial_cmp(&ra).unwrap_or(std::cmp::Ordering::Equal)
        });
        for k in order {
            if left == 0 {
                break;
            }
            take[k] += 1;
            left -= 1;
        }
        let mut out = Vec::with_capacity(size);
        for (g, k) in groups.into_values().zip(take) {
            let mut g = g;
            rng.shuffle(&mut g);
            out.extend(g.into_iter().take(k));
        }
        out
    } else {
        let mut all: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut all);
        all.truncate(size);
        all
    };
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_sample_and_strata_keep_their_share() {
        let strata: Vec<Option<String>> = (0..100)
            .map(|i| Some(if i < 70 { "qa" } else { "code" }.to_string()))
            .collect();
        let a = sample(&strata, 10, 42, true);
        assert_eq!(a, sample(&strata, 10, 42, true));
        assert_ne!(a, sample(&strata, 10, 43, true));
        assert_eq!(a.len(), 10);
        assert_eq!(a.iter().filter(|i| **i < 70).count(), 7);
        assert_eq!(a.iter().filter(|i| **i >= 70).count(), 3);
        let b = sample(&strata, 10, 42, false);
        assert_eq!(b.len(), 10);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample(&strata, 500, 1, false).len(), 100);
    }

    #[test]
    fn shuffles_are_permutations_and_coins_are_fair_enough() {
        let mut r = Rng::derived(9, "alice");
        let mut v: Vec<usize> = (0..50).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(v, sorted);
        let heads = (0..10_000).filter(|_| r.coin()).count();
        assert!((4_700..5_300).contains(&heads), "{heads}");
    }
}
