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

# Take a backup of DATABASE_URL into BACKUP_DIR (default data/backups): just backup-create [reason]
backup-create reason="manual":
    cargo run --release -p backup-runner -- create --reason {{reason}}

# Take a backup and verify it; fails if either fails (the migration CLI runs this by itself).
backup-pre-migration:
    cargo run --release -p backup-runner -- pre-migration

# Verify a backup (the newest without an id): just backup-verify [id]
backup-verify id="":
    cargo run --release -p backup-runner -- verify {{id}}

# Backup health with Nagios exit codes: just backup-monitor [--json] [--prometheus FILE]
backup-monitor *flags:
    cargo run --release -p backup-runner -- monitor {{flags}}

# Restore a backup (verified first, safety backup of the current database): just backup-restore ID [--dry-run] [--to URL]
backup-restore id *flags:
    cargo run --release -p backup-runner -- restore {{id}} {{flags}}

# Apply the retention policy: just backup-prune [--dry-run] [--keep-daily N ...]
backup-prune *flags:
    cargo run --release -p backup-runner -- prune {{flags}}

# Benchmark backup create/verify against cp and the VACUUM INTO + zstd script (docs/PERFORMANCE.md).
bench-backup:
    cargo bench --bench backup

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
# just perf-table [tiny|small|medium|large] [--runs 50] [--generate-into postgres://…]
perf-table scale="small" *args:
    mkdir -p target/perf
    cargo run --release --bin hotel-stats -- perf-table --scale {{scale}} --markdown target/perf/perf-table-{{scale}}.md {{args}}

# Continuous replication against Litestream, side by side on one moto S3 server (the figures in
# docs/PERFORMANCE.md): just bench-replication [scale] [seconds per phase] [bookings per second]
bench-replication scale="large" seconds="60" rate="50":
    cargo build --release -p backup-runner -p migration -p dataset
    rm -rf target/bench-replication && mkdir -p target/bench-replication
    DATABASE_URL=sqlite://target/bench-replication/hotel.sqlite BACKUP_DIR=target/bench-replication/backups ./target/release/migration up
    DATABASE_URL=sqlite://target/bench-replication/hotel.sqlite ./target/release/dataset --scale {{scale}} --reference-date 2026-11-25
    npm install --prefix target/litestream @flydotio/litestream-linux-x64
    python3 scripts/replication_vs_litestream.py --db target/bench-replication/hotel.sqlite \
        --hotel-backup target/release/hotel-backup \
        --litestream target/litestream/node_modules/@flydotio/litestream-linux-x64/litestream \
        --seconds {{seconds}} --rate {{rate}} --json target/bench-replication/result.json \
        --markdown target/bench-replication/result.md

# PostgreSQL point-in-time recovery against pgBackRest on one cluster the script starts (the
# figures in docs/PERFORMANCE.md): just bench-pitr [scale] [rounds] [seconds of load] [bookings/s]
# Needs pgbackrest (apt-get install pgbackrest) and psycopg2 (pip install psycopg2-binary).
bench-pitr scale="medium" rounds="2" seconds="30" rate="50" *args:
    cargo build --release -p backup-runner -p migration -p dataset
    mkdir -p target/bench-pitr
    python3 scripts/pitr_vs_pgbackrest.py --hotel-backup target/release/hotel-backup \
        --migration target/release/migration --dataset target/release/dataset \
        --scale {{scale}} --rounds {{rounds}} --seconds {{seconds}} --rate {{rate}} \
        --json target/bench-pitr/result.json --markdown target/bench-pitr/result.md {{args}}
