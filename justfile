# Recipes mirroring the original system's scripts. Each is a thin wrapper over cargo and the
# workspace's binaries, so people and CI run the same commands. `cargo install just` to use them.

set dotenv-load := false

# Apply pending migrations to DATABASE_URL (default: data/hotel.sqlite).
migrate:
    cargo run -p migration -- up

# Migration status.
migrate-status:
    cargo run -p migration -- status

# Drop everything and re-apply every migration.
migrate-fresh:
    cargo run -p migration -- fresh

# Fill the migrated, empty database: just seed [tiny|small|medium|large]
seed scale="small":
    cargo run --release -p dataset -- --scale {{scale}}

# Fresh database with the small dataset.
reset-demo:
    cargo run -p migration -- fresh
    cargo run --release -p dataset -- --scale small

# Every test, as CI runs them (PostgreSQL and Redis must be up).
test:
    HOTEL_REQUIRE_SERVICES=1 cargo test --workspace

# Formatting, lints and tests, exactly as CI.
ci:
    .ci/run

# The query cache's Redis tier against the local Redis (fails instead of skipping without it).
test-redis-tier:
    HOTEL_REQUIRE_SERVICES=1 cargo test -p query-cache --all-features

# Criterion benchmarks: just bench [name]
bench name="":
    cargo bench -p benches {{ if name == "" { "" } else { "--bench " + name } }}

# The Redis tier's throughput and cross-instance invalidation latency (docs/PERFORMANCE.md).
bench-redis-tier:
    cargo bench --bench query_cache_redis -- --warm-up-time 2 --measurement-time 5

# Time the large dataset into a fresh SQLite file (the figure in docs/PERFORMANCE.md).
bench-dataset:
    rm -rf target/bench-data
    DATABASE_URL=sqlite://target/bench-data/hotel.sqlite cargo run --release -p migration -- up
    DATABASE_URL=sqlite://target/bench-data/hotel.sqlite cargo run --release -p dataset -- --scale large --reference-date 2026-11-25

# perf-stats: an N+1 loop, its fix and the query report on the tiny dataset.
query-report:
    cargo run --example query_report
