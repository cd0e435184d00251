//! Synthetic request traces for hit-ratio measurements. Each is seeded, so a trace, and
//! the hit ratio a cache with a seeded hash gets on it, is the same on every run.
//!
//! One source for every user: the policy tests (`src/policy/tests.rs`) and the bench
//! `benches/query_cache_hit_ratio.rs` include this file by path.

// Each user calls the generators it needs.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Zipf};

/// A named sequence of requested keys.
pub(crate) struct Trace {
    pub(crate) name: String,
    pub(crate) keys: Vec<u32>,
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Ranks `0..keys` from a Zipf distribution of exponent `skew` (rank 0 the most popular),
/// scattered over the key ids so that popularity does not follow the ids.
fn zipf_ranks(keys: usize, skew: f64, requests: usize, seed: u64) -> impl Iterator<Item = u32> {
    let zipf = Zipf::new(keys as f64, skew).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = rng(seed);
    (0..requests).map(move |_| (zipf.sample(&mut rng) as u32).saturating_sub(1))
}

/// A fixed permutation of `0..keys`, so that rank `r` is key `scatter(r)`.
fn scatter(rank: u32, keys: usize) -> u32 {
    // Multiplication by an odd number is a bijection modulo a power of two; ranks past
    // `keys` in that range are folded back by retrying.
    let modulus = (keys as u64).next_power_of_two();
    let mut x = u64::from(rank);
    loop {
        x = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (x >> 7)) & (modulus - 1);
        if x < keys as u64 {
            return x as u32;
        }
    }
}

/// Frequency-heavy: stationary Zipf popularity over `keys` keys.
pub(crate) fn zipf(keys: usize, skew: f64, requests: usize, seed: u64) -> Trace {
    Trace {
        name: format!("Zipf {skew}"),
        keys: zipf_ranks(keys, skew, requests, seed)
            .map(|rank| scatter(rank, keys))
            .collect(),
    }
}

/// The keys `0..len` requested in order, over and over: with `len` above the capacity
/// LRU never hits, and a policy that keeps a fixed part of the loop hits on that part.
pub(crate) fn looping(len: usize, requests: usize) -> Trace {
    Trace {
        name: format!("loop of {len}"),
        keys: (0..requests).map(|i| (i % len) as u32).collect(),
    }
}

/// A Zipf stream with a scan of `scan_len` never-seen keys every `every` requests:
/// one-off keys that a frequency filter should keep out.
pub(crate) fn zipf_with_scans(
    keys: usize,
    skew: f64,
    requests: usize,
    every: usize,
    scan_len: usize,
    seed: u64,
) -> Trace {
    let mut zipf = zipf_ranks(keys, skew, requests, seed);
    let mut next_scan_key = keys as u32;
    let mut trace = Vec::with_capacity(requests);
    while trace.len() < requests {
        trace.extend(zipf.by_ref().take(every).map(|rank| scatter(rank, keys)));
        for _ in 0..scan_len {
            trace.push(next_scan_key);
            next_scan_key += 1;
        }
    }
    trace.truncate(requests);
    Trace {
        name: format!("Zipf {skew} + scans of {scan_len}"),
        keys: trace,
    }
}

/// Recency-heavy: keys keep being introduced (a share `new` of the requests), and a
/// request for an older key picks one introduced `d` keys ago, with `d` exponentially
/// distributed (mean `mean_age`). Popularity is a matter of age, so what was frequent
/// a while ago is worth nothing now: LRU's case.
pub(crate) fn recency(new: f64, mean_age: f64, requests: usize, seed: u64) -> Trace {
    let age = Exp::new(1.0 / mean_age).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = rng(seed);
    let mut newest = 0_u32;
    let keys = (0..requests)
        .map(|_| {
            if newest == 0 || rng.random_bool(new) {
                newest += 1;
                newest
            } else {
                let d = age.sample(&mut rng) as u32;
                newest.saturating_sub(d).max(1)
            }
        })
        .collect();
    Trace {
        name: format!("recency (mean age {mean_age})"),
        keys,
    }
}

/// Zipf popularity whose hot keys change every `phase` requests: each phase the ranks
/// map to keys shifted by half the key space, so half of the popular keys are new.
pub(crate) fn shifting(keys: usize, skew: f64, requests: usize, phase: usize, seed: u64) -> Trace {
    let trace = zipf_ranks(keys, skew, requests, seed)
        .enumerate()
        .map(|(i, rank)| {
            let shift = (i / phase) as u32 * (keys as u32 / 2);
            scatter(rank, keys) + shift
        })
        .collect();
    Trace {
        name: format!("Zipf {skew}, popularity shifting every {phase}"),
        keys: trace,
    }
}
