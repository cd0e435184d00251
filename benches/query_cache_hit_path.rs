//! The hit path in instructions, for comparisons that a shared machine's timing noise
//! cannot settle: N hits on 10 000 cached keys (uniform, seeded), `get` or `with_cache`,
//! run under callgrind twice with different N; the difference divided by the difference
//! of N is the cost of one hit, whatever else the machine is doing.
//!
//! ```text
//! cargo bench --bench query_cache_hit_path --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/query_cache_hit_path-* 100000 get
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/query_cache_hit_path-* 200000 get
//! ```
//!
//! Under `cargo bench` (or without arguments) it runs 1 000 000 `get` hits and prints them.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use benches::ready;
use query_cache::{Cacheable, QueryCache, Ttl};

struct Row {
    _id: u64,
    _name: String,
}
impl Cacheable for Row {}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let hits: usize = args.first().map_or(1_000_000, |n| n.parse().unwrap());
    let with_cache = args.get(1).is_some_and(|mode| mode == "with_cache");
    let cache = QueryCache::builder().max_entries(20_000).build().unwrap();
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("availability:{i}:2025-06-01"))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let row = Row {
            _id: i as u64,
            _name: format!("room type {i}"),
        };
        cache.insert(key.as_str(), row, Ttl::LONG, &[]);
    }
    let mut x = 0x9e37_79b9_u64;
    let mut found = 0_usize;
    for _ in 0..hits {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = keys[(x % 10_000) as usize].as_str();
        let hit = if with_cache {
            ready(cache.with_cache(key, Ttl::LONG, &[], || async {
                Ok::<_, Infallible>(Row {
                    _id: 0,
                    _name: String::new(),
                })
            }))
            .is_ok()
        } else {
            cache.get::<Row>(key).unwrap().is_some()
        };
        found += usize::from(hit);
    }
    assert_eq!(found, hits, "every lookup is a hit");
    println!(
        "query_cache/hit_path: {found} {} hits, {} shards",
        if with_cache { "with_cache" } else { "get" },
        cache.shard_count()
    );
}
