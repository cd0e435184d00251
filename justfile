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

# Criterion benchmarks: just bench [name]
bench name="":
    cargo bench -p benches {{ if name == "" { "" } else { "--bench " + name } }}

# Time the large dataset into a fresh SQLite file (the figure in docs/PERFORMANCE.md).
bench-dataset:
    rm -rf target/bench-data
    DATABASE_URL=sqlite://target/bench-data/hotel.sqlite cargo run --release -p migration -- up
    DATABASE_URL=sqlite://target/bench-data/hotel.sqlite cargo run --release -p dataset -- --scale large --reference-date 2026-11-25

# perf-stats: an N+1 loop, its fix and the query report on the tiny dataset.
query-report:
    cargo run --example query_report

# hotel-stats: a running server's cache statistics; exit 1 on poor reuse.
# HOTEL_ADMIN_TOKEN=htk_… just perf-cache-stats [--url http://host:3000] [--json]
perf-cache-stats *args:
    cargo run --release --bin hotel-stats -- cache-stats {{args}}

# hotel-stats: a running server's top queries, or --database-url URL to time the hot queries.
# HOTEL_ADMIN_TOKEN=htk_… just perf-analyze-queries [--sort p99] [--top 20]
perf-analyze-queries *args:
    cargo run --release --bin hotel-stats -- analyze-queries {{args}}

# hotel-stats: indexes and hot-query plans of DATABASE_URL (default data/hotel.sqlite);
# exit 1 on a missing index or a scan. just perf-check-indexes [--plans realistic]
perf-check-indexes *args:
    cargo run --release --bin hotel-stats -- check-indexes {{args}}

# hotel-stats: the before/after table on a generated dataset, also written as markdown.
# just perf-table [tiny|small|medium|large] [--runs 50] [--database-url postgres://…]
perf-table scale="small" *args:
    mkdir -p target/perf
    cargo run --release --bin hotel-stats -- perf-table --scale {{scale}} --markdown target/perf/perf-table-{{scale}}.md {{args}}
