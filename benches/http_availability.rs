//! Throughput and latency of `GET /api/availability` at concurrency 10, in one run: a bare axum
//! handler returning a constant (the ceiling), the same handler under the server's middleware
//! stacked one layer at a time (what each layer costs), the server's handler alone, the real
//! server answering from its cache, the real server missing its cache on every request, and
//! (when Redis answers) the server with the shared tier (L1 + L2) and with Redis alone (L2
//! only: nothing kept in process). Then the cached server's memory over a 60 s run.
//!
//! ```text
//! cargo bench --bench http_availability                 # every mode, 10 s each, then 60 s of memory
//! HOTEL_BENCH_SECONDS=5 HOTEL_BENCH_MEMORY_SECONDS=0 cargo bench --bench http_availability
//! HOTEL_BENCH_ROUNDS=3 HOTEL_BENCH_MODES=layers cargo bench --bench http_availability
//! ```
//!
//! `HOTEL_BENCH_MODES=layers` runs only the ceiling, the layer stacks, the handler alone and the
//! cached server (`HOTEL_BENCH_ONLY=<part of a mode's name>` keeps the ceiling and the modes
//! so named, to profile one); `HOTEL_BENCH_ROUNDS` repeats those in turn and reports each one's median (the
//! machine is shared: interleaved rounds keep a slow minute from landing on one mode only).
//!
//! Load comes from `wrk` (Debian package `wrk`) with 10 connections on one thread, on the same
//! 2-core machine as the server; the database is the small dataset in SQLite.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{path::PathBuf, process::Command, time::Duration};

use axum::{Json, Router, routing::get};
use chrono::NaiveDate;
use dataset::{DatasetOptions, Scale};
use migration::{Migrator, MigratorTrait};
use server::{AppState, http_metrics, load_shed::InFlightLimitLayer, middleware, routes};
use server::{
    app::HttpLimits,
    startup::{self, Settings},
};

fn seconds(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A wrk run's figures.
#[derive(Debug)]
struct Figures {
    requests_per_second: f64,
    /// CPU time this process (the server under load; the others are idle) spent per request:
    /// on a machine shared with other work this moves far less than requests per second.
    cpu_us_per_request: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_ms(text: &str) -> f64 {
    let text = text.trim();
    if let Some(us) = text.strip_suffix("us") {
        us.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
    } else if let Some(ms) = text.strip_suffix("ms") {
        ms.parse().unwrap_or(f64::NAN)
    } else if let Some(s) = text.strip_suffix('s') {
        s.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
    } else {
        f64::NAN
    }
}

/// CPU seconds (user and system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start at state (field 3);
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s.
    let after_command = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn wrk(url: &str, seconds: u64, script: Option<&PathBuf>) -> Figures {
    let mut command = Command::new("wrk");
    command.args(["-t1", "-c10", &format!("-d{seconds}s"), "--latency", url]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let cpu_before = cpu_seconds();
    let output = command.output().expect("run wrk (apt-get install wrk)");
    let cpu = cpu_seconds() - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let line_value = |prefix: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(prefix)
                    .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
            })
            .unwrap_or_default()
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .flat_map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
        })
        .sum();
    let requests_per_second: f64 = line_value("Requests/sec:").parse().unwrap_or(f64::NAN);
    Figures {
        requests_per_second,
        cpu_us_per_request: cpu * 1e6 / (requests_per_second * seconds as f64),
        p50_ms: parse_ms(&line_value("50%")),
        p99_ms: parse_ms(&line_value("99%")),
        errors,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// The real server on a random port: with Redis at `redis_url` (and at most `l1_max_ttl` in
/// its own cache) when given, alone otherwise.
async fn start_server(database_url: &str, redis: Option<(String, Duration)>) -> String {
    let defaults = Settings::new(database_url);
    let settings = Settings {
        cache_max_entries: 200_000,
        redis_url: redis.as_ref().map(|(url, _)| url.clone()),
        redis_prefix: format!("bench:{}", std::process::id()),
        l1_max_ttl: redis.map_or(defaults.l1_max_ttl, |(_, ttl)| ttl),
        ..defaults
    };
    let state = startup::build_state(&settings)
        .await
        .expect("start the server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(startup::serve(
        listener,
        state,
        HttpLimits::default(),
        std::future::pending(),
    ));
    url
}

/// One line of the table; against the ceiling, both its requests per second and its CPU time
/// per request (what the share would be if the server had the cores to itself).
fn report(name: &str, figures: &Figures, ceiling: Option<&Figures>) {
    let share = ceiling.map_or(String::new(), |c| {
        format!(
            "{:>6.1} % of the ceiling ({:>5.1} % by CPU/req)",
            100.0 * figures.requests_per_second / c.requests_per_second,
            100.0 * c.cpu_us_per_request / figures.cpu_us_per_request
        )
    });
    println!(
        "{name:<40} {:>8.0} req/s {:>6.1} µs CPU/req   p50 {:>6.3} ms   p99 {:>7.3} ms   errors {:>3}   {share}",
        figures.requests_per_second,
        figures.cpu_us_per_request,
        figures.p50_ms,
        figures.p99_ms,
        figures.errors
    );
}

/// The ceiling's handler: a constant, as JSON.
async fn constant() -> Json<serde_json::Value> {
    Json(
        serde_json::json!([{"roomTypeId": 1, "startDate": "2026-11-25", "endDate": "2026-11-26", "roomsNeeded": 1, "available": true, "minAvailable": 5}]),
    )
}

fn bare() -> Router {
    Router::new().route("/api/availability", get(constant))
}

/// The constant handler under the server's middleware, one layer more at a time from the
/// innermost outwards, as `app()` stacks them; the last also has the router's own layers (HTTP
/// metrics with the perf-stats query scope, and the in-flight cap, which need the server's
/// state).
fn layer_stacks(state: &AppState, limits: &HttpLimits) -> Vec<(&'static str, Router)> {
    use middleware::{body_limit, catch_panic, compression, request_id, timeout, trace};
    let l = limits;
    // The layers from the tracing span inwards; a nested tuple stacks exactly as a flat one.
    let from_trace = || {
        (
            trace(),
            catch_panic(),
            timeout(l),
            compression(),
            body_limit(l),
        )
    };
    // Every layer of app()'s middleware, innermost last.
    let every_layer = || (request_id(), from_trace());
    vec![
        ("+ body limit", bare().layer(body_limit(l))),
        (
            "+ compression negotiation",
            bare().layer((compression(), body_limit(l))),
        ),
        (
            "+ timeout",
            bare().layer((timeout(l), compression(), body_limit(l))),
        ),
        (
            "+ catch panic",
            bare().layer((catch_panic(), timeout(l), compression(), body_limit(l))),
        ),
        ("+ trace span, access log", bare().layer(from_trace())),
        (
            "+ request id, made and on the response",
            bare().layer(every_layer()),
        ),
        (
            "+ HTTP metrics, query scope, in-flight",
            // In one `layer` call, as app() gives them.
            Router::new()
                .route("/api/availability", get(constant))
                .layer((
                    every_layer(),
                    http_metrics::HttpMetricsLayer::new(state.http.clone(), state.tracker.clone()),
                    InFlightLimitLayer::new(l.max_requests_in_flight, state.http.shed_counter()),
                ))
                .with_state(state.clone()),
        ),
    ]
}

/// The server's availability handler over `state`, without any middleware.
fn handler_alone(state: &AppState) -> Router {
    Router::new()
        .route("/api/availability", get(routes::catalog::availability))
        .with_state(state.clone())
}

/// Runs every mode `rounds` times in turn and reports each one's median requests per second;
/// returns the first mode's (the ceiling's).
fn layer_rounds(modes: &[(String, String)], run_seconds: u64, rounds: usize) -> Figures {
    let mut figures: Vec<Vec<Figures>> = modes.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for ((_, url), runs) in modes.iter().zip(&mut figures) {
            runs.push(wrk(url, run_seconds, None));
        }
    }
    let median = |runs: &mut Vec<Figures>| {
        runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
        runs.swap_remove(runs.len() / 2)
    };
    let mut medians = figures.iter_mut().map(median);
    let ceiling = medians.next().expect("the ceiling is the first mode");
    report(&modes[0].0, &ceiling, None);
    for ((name, _), figures) in modes.iter().skip(1).zip(medians) {
        report(name, &figures, Some(&ceiling));
    }
    ceiling
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test")
        || Command::new("wrk").arg("-v").output().is_err()
    {
        eprintln!("http_availability: needs `wrk` and runs only under `cargo bench`");
        return;
    }
    let run_seconds = seconds("HOTEL_BENCH_SECONDS", 10);
    let memory_seconds = seconds("HOTEL_BENCH_MEMORY_SECONDS", 60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).expect("target/bench-data");
    let database = dir.join("http-small.sqlite");
    let database_url = format!("sqlite://{}", database.display());
    let reference = NaiveDate::from_ymd_opt(2026, 11, 25).expect("date");
    runtime.block_on(async {
        if !database.exists() {
            let db = db_connect::connect(&database_url).await.expect("create");
            Migrator::up(&db, None).await.expect("migrate");
            dataset::generate(
                &db,
                &DatasetOptions::new(Scale::Small).reference_date(reference),
                &|_| {},
            )
            .await
            .expect("generate");
            db.close().await.expect("close");
        }
    });

    // Every request a different key: 20 room types × 150 start nights × 7 lengths × 4 room counts.
    let script = dir.join("uncached.lua");
    std::fs::write(
        &script,
        r#"counter = 0
request = function()
  counter = counter + 1
  local rt = counter % 20 + 1
  local day = math.floor(counter / 20) % 150
  local nights = math.floor(counter / 3000) % 7 + 1
  local rooms = math.floor(counter / 21000) % 4 + 1
  local start = os.time{year=2026, month=12, day=1, hour=12} + day * 86400
  local path = string.format("/api/availability?roomTypeId=%d&startDate=%s&endDate=%s&rooms=%d",
    rt, os.date("!%Y-%m-%d", start), os.date("!%Y-%m-%d", start + nights * 86400), rooms)
  return wrk.format("GET", path)
end
"#,
    )
    .expect("write the wrk script");

    let rounds = seconds("HOTEL_BENCH_ROUNDS", 1).max(1) as usize;
    let only_layers = std::env::var("HOTEL_BENCH_MODES").is_ok_and(|m| m == "layers");
    let limits = HttpLimits::default();
    let (modes, cached) = runtime.block_on(async {
        let state = startup::build_state(&Settings::new(&database_url))
            .await
            .expect("start the server");
        let mut modes = vec![(
            "bare axum, constant (ceiling)".to_owned(),
            serve(bare()).await,
        )];
        for (name, router) in layer_stacks(&state, &limits) {
            modes.push((name.to_owned(), serve(router).await));
        }
        modes.push((
            "server's handler alone, cached".to_owned(),
            serve(handler_alone(&state)).await,
        ));
        // The whole router under axum's own accept loop: what the server's serving loop
        // (connection limits and deadlines) adds is the difference with the next line.
        modes.push((
            "app() under axum::serve, cached".to_owned(),
            serve(server::app(state.clone(), limits)).await,
        ));
        let cached = start_server(&database_url, None).await;
        modes.push(("hotel-server, cached (L1)".to_owned(), cached.clone()));
        // The ceiling, and only the modes named in HOTEL_BENCH_ONLY when it is set (to profile one).
        let only = std::env::var("HOTEL_BENCH_ONLY").ok();
        let modes: Vec<(String, String)> = modes
            .into_iter()
            .enumerate()
            .filter(|(i, (name, _))| {
                *i == 0 || only.as_ref().is_none_or(|o| name.contains(o.as_str()))
            })
            .map(|(_, (name, url))| (name, format!("{url}/api/availability")))
            .collect();
        (modes, cached)
    });
    println!(
        "GET /api/availability, wrk -t1 -c10 -d{run_seconds}s, small dataset in SQLite, median of {rounds} round(s)\n"
    );
    let ceiling = layer_rounds(&modes, run_seconds, rounds);
    if only_layers {
        return;
    }
    let miss = wrk(&cached, run_seconds, Some(&script));
    report("hotel-server, every request a miss", &miss, Some(&ceiling));

    if std::net::TcpStream::connect("127.0.0.1:6379").is_ok() {
        let redis = "redis://127.0.0.1:6379".to_owned();
        let tiered = runtime.block_on(start_server(
            &database_url,
            Some((redis.clone(), Duration::from_secs(5))),
        ));
        let hit = wrk(&format!("{tiered}/api/availability"), run_seconds, None);
        report("hotel-server, cached (L1 + Redis)", &hit, Some(&ceiling));
        let miss = wrk(&tiered, run_seconds, Some(&script));
        report("hotel-server, L1 misses (L2 or DB)", &miss, Some(&ceiling));
        // Nothing kept in process: every request is a Redis round trip (a hit there).
        let l2_only = runtime.block_on(start_server(&database_url, Some((redis, Duration::ZERO))));
        let hit = wrk(&format!("{l2_only}/api/availability"), run_seconds, None);
        report("hotel-server, cached (L2 only)", &hit, Some(&ceiling));
    }

    if memory_seconds > 0 {
        println!(
            "\nmemory of the process while wrk loads the cached route for {memory_seconds} s:"
        );
        let url = format!("{cached}/api/availability");
        let load = std::thread::spawn(move || wrk(&url, memory_seconds, None));
        let mut samples = Vec::new();
        for _ in 0..=(memory_seconds / 5) {
            samples.push(rss_kib());
            std::thread::sleep(Duration::from_secs(5));
        }
        let figures = load.join().expect("wrk");
        let mib: Vec<String> = samples
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect();
        println!("RSS every 5 s (MiB): {}", mib.join(" "));
        report("hotel-server, cached, 60 s", &figures, None);
    }
}
