#!/usr/bin/env python3
"""Continuous replication of SQLite: hotel-backup replicate against Litestream, side by side.

One run, one moto S3 server, the same database (a copy per phase) and the same booking load:

  1. baseline      no replicator: the writer's create-booking latency alone;
  2. hotel-backup  `hotel-backup replicate` to s3://bucket/hotel-backup;
  3. litestream    `litestream replicate` to s3://bucket/litestream.

Each booking carries a unique idempotency key. An observer lists the bucket every
--list-every seconds, downloads every new log object (our `.seg`, Litestream's `.wal.lz4`),
decompresses it (`zstd -dc`, `lz4 -dc`) and looks for the keys of the bookings not yet seen:
a booking's replication lag is the moment the first object holding it was listed minus the
moment its COMMIT returned. That is the same measure for both tools, taken from outside,
and an upper bound by at most one listing period.

Also measured per replicator: CPU seconds (utime+stime from /proc) during the load, peak RSS
(VmHWM), bytes of log objects uploaded per booking, the time to restore --latest and to a
point in time into a new file (each restore's result is checked: the latest one holds every
booking, the point-in-time one holds no booking committed after the instant and every one
committed a second before it). hotel-backup's restores also report how long they spent
checking the rebuilt copy (integrity_check, foreign_key_check), which Litestream does not do:
the table shows each restore with and without that part, and Litestream's followed by the
same two pragmas (Python's sqlite3, timed apart), which is what an operator who wants the
same guarantee runs.

Usage (`just bench-replication` builds, generates the dataset and runs this):

  python3 scripts/replication_vs_litestream.py --db target/bench-data/hotel.sqlite \
      --hotel-backup target/release/hotel-backup \
      --litestream /tmp/ls/node_modules/@flydotio/litestream-linux-x64/litestream \
      --seconds 60 --rate 50 --markdown target/bench-replication.md

Needs moto_server, boto3, zstd and lz4 on the PATH.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import free_port, percentile  # noqa: E402

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"
BUCKET = "replication-bench"


def iso(t):
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Moto:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("moto_server did not start")
                time.sleep(0.1)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(retries={"max_attempts": 10}),
        )
        for _ in range(50):
            try:
                self.s3.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # moto answers TCP before HTTP
                time.sleep(0.2)

    def objects(self, prefix):
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix + "/"
        ):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def get(self, key):
        return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # utime, stime, cutime, cstime: fields 14-17 of stat (after the command name: 11-14).
    return sum(int(x) for x in fields[11:15]) / ticks


def proc_peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Observer(threading.Thread):
    """Lists a prefix, fetches each new log object and finds the bookings it holds."""

    def __init__(self, moto, prefix, is_log, decompress, every):
        super().__init__(daemon=True)
        self.moto, self.prefix, self.is_log, self.decompress = moto, prefix, is_log, decompress
        self.every = every
        self.lock = threading.Lock()
        self.pending = {}  # key bytes -> commit time
        self.lag = {}  # key bytes -> seconds
        self.seen = {}
        self.log_bytes = 0
        self.log_objects = 0
        self.counting = False
        self.stop_flag = False

    def baseline(self):
        self.seen = self.moto.objects(self.prefix)

    def committed(self, key, at):
        with self.lock:
            self.pending[key] = at

    def run(self):
        while not self.stop_flag:
            listed_at = time.time()
            try:
                now = self.moto.objects(self.prefix)
            except Exception:
                time.sleep(self.every)
                continue
            for key, size in sorted(now.items()):
                if key in self.seen:
                    continue
                self.seen[key] = size
                if not self.is_log(key):
                    continue
                raw = self.decompress(self.moto.get(key))
                with self.lock:
                    if self.counting:
                        self.log_bytes += size
                        self.log_objects += 1
                    found = [k for k in self.pending if k in raw]
                    for k in found:
                        self.lag[k] = listed_at - self.pending.pop(k)
            time.sleep(max(0.0, self.every - (time.time() - listed_at)))

    def wait_all(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if not self.pending:
                    return 0
            time.sleep(0.05)
        with self.lock:
            return len(self.pending)


def decompress_with(*command):
    def run(data):
        return subprocess.run(command, input=data, capture_output=True, check=True).stdout

    return run


class Writer:
    """The create-booking transaction of optimized_queries::create_booking, in SQL: an
    immediate transaction that reads the price, takes a room on every night of the stay and
    inserts the booking (with a unique idempotency key)."""

    def __init__(self, path, phase, seed):
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        # The replicators run checkpoints (ours pins the log; Litestream asks for this too).
        self.conn.execute("PRAGMA wal_autocheckpoint = 0")
        self.rng = random.Random(seed)
        self.phase = phase
        self.n = 0
        self.types = [r[0] for r in self.conn.execute("SELECT id FROM room_types")]
        self.users = self.conn.execute("SELECT min(id), max(id) FROM users").fetchone()
        first, last = self.conn.execute("SELECT min(date), max(date) FROM room_inventory").fetchone()
        self.first = datetime.fromisoformat(first).date()
        self.days = (datetime.fromisoformat(last).date() - self.first).days - 4

    def book(self):
        """One booking: (latency seconds, commit time, key or None when no room was free)."""
        self.n += 1
        key = f"bench-{self.phase}-{self.n:08d}-{self.rng.getrandbits(48):012x}"
        room_type = self.rng.choice(self.types)
        start = self.first + timedelta(days=self.rng.randrange(self.days))
        nights = self.rng.randint(1, 3)
        end = start + timedelta(days=nights)
        user = self.rng.randint(*self.users)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        c = self.conn
        began = time.perf_counter()
        c.execute("BEGIN IMMEDIATE")
        (price,) = c.execute(
            "SELECT price_per_night FROM room_types WHERE id = ?", (room_type,)
        ).fetchone()
        taken = c.execute(
            "UPDATE room_inventory SET available_rooms = available_rooms - 1 "
            "WHERE room_type_id = ? AND date >= ? AND date < ? AND available_rooms >= 1",
            (room_type, start.isoformat(), end.isoformat()),
        ).rowcount
        if taken != nights:
            c.execute("ROLLBACK")
            return time.perf_counter() - began, time.time(), None
        total = price * nights
        c.execute(
            "INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, "
            "status, total_price, deposit_amount, is_deposit_paid, idempotency_key, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, 1, 'PROVISIONAL', ?, ?, 0, ?, ?, ?)",
            (user, room_type, start.isoformat(), end.isoformat(), total, total * 30 // 100, key, now, now),
        )
        c.execute("COMMIT")
        return time.perf_counter() - began, time.time(), key


def prepare(source, path):
    shutil.copyfile(source, path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.close()


def restore_checked(command, env, out, keys, cutoff=None, committed=None):
    """Runs a restore into `out`; returns its wall time and what it holds of the stream."""
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()}")
    took = time.perf_counter() - began
    check_seconds = None
    if "--json" in command:
        # hotel-backup reports the part spent checking the rebuilt copy (Litestream checks
        # nothing): the restore's time without its verification is the difference.
        check_seconds = json.loads(done.stdout)["check_duration"] / 1e3
    checked_after = None
    if "--json" not in command:
        # Litestream checks nothing: what an operator who wants the same guarantee as ours
        # (never a damaged copy put in place) runs next, timed apart.
        began_check = time.perf_counter()
        conn = sqlite3.connect(out)
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        conn.close()
        checked_after = time.perf_counter() - began_check
        if integrity != [("ok",)] or violations:
            raise SystemExit(f"{out}: {integrity[:3]} {violations[:3]}")
    conn = sqlite3.connect(out)
    present = {
        r[0]
        for r in conn.execute("SELECT idempotency_key FROM bookings WHERE idempotency_key LIKE 'bench-%'")
    }
    conn.close()
    check = {"seconds": took, "check_seconds": check_seconds, "checked_after_seconds": checked_after,
             "bookings": len(present & set(keys))}
    if cutoff is not None:
        check["after_instant"] = sum(1 for k in present if committed.get(k, 0) > cutoff)
        check["missing_before_instant_minus_1s"] = sum(
            1 for k, t in committed.items() if t < cutoff - 1 and k not in present
        )
    else:
        check["missing"] = len(set(keys) - present)
    return check


def run_phase(args, moto, name, workdir):
    path = os.path.join(workdir, f"{name}.sqlite")
    prepare(args.db, path)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_REGION=REGION, RUST_LOG="warn")
    proc = observer = None
    config = os.path.join(workdir, f"{name}.yml")
    repo = f"s3://{BUCKET}/{name}?endpoint={moto.endpoint}&region={REGION}"
    if name == "hotel-backup":
        proc = subprocess.Popen(
            [args.hotel_backup, "--scratch-dir", os.path.join(workdir, "scratch"), "replicate",
             "--interval", "1s"],
            env=dict(env, DATABASE_URL=f"sqlite://{path}", BACKUP_DIR=repo),
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, f"{name}.log"), "w"),
        )
        observer = Observer(moto, name, lambda k: k.endswith(".seg"),
                            decompress_with("zstd", "-dcq"), args.list_every)
        # Restorable once the base snapshot (data, then its manifest) is uploaded: an idle
        # database ships no segment until the heartbeat (15 s), so waiting for one would time
        # the heartbeat, not the snapshot.
        ready = lambda objs: any(
            k.endswith(".sqlite.zst") and k[: -len(".sqlite.zst")] + ".json" in objs for k in objs)
    elif name == "litestream":
        with open(config, "w") as f:
            f.write(
                f"dbs:\n  - path: {path}\n    replicas:\n      - type: s3\n"
                f"        bucket: {BUCKET}\n        path: {name}\n        endpoint: {moto.endpoint}\n"
                f"        region: {REGION}\n        force-path-style: true\n"
                f"        access-key-id: {ACCESS_KEY}\n        secret-access-key: {SECRET_KEY}\n"
                f"        sync-interval: 1s\n"
            )
        proc = subprocess.Popen(
            [args.litestream, "replicate", "-config", config],
            env=env, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(workdir, f"{name}.log"), "w"),
        )
        observer = Observer(moto, name, lambda k: k.endswith(".wal.lz4"),
                            decompress_with("lz4", "-dcq"), args.list_every)
        ready = lambda objs: any("/snapshots/" in k for k in objs) and any(
            k.endswith(".wal.lz4") for k in objs)
    if proc:
        began = time.time()
        while not ready(moto.objects(name)):
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited: see {workdir}/{name}.log")
            time.sleep(0.2)
        snapshot_seconds = time.time() - began
        at_start = moto.objects(name)
        snapshot_bytes = sum(at_start.values())
        print(f"{name}: replicating after {snapshot_seconds:.1f} s, {len(at_start)} objects, "
              f"{snapshot_bytes} bytes: {sorted(at_start)[:8]}", file=sys.stderr, flush=True)
        observer.baseline()
        observer.start()
        cpu_before = proc_cpu_seconds(proc.pid)

    writer = Writer(path, name, args.seed)
    latencies, committed, keys = [], {}, []
    refused = 0
    if observer:
        observer.counting = True
    period = 1.0 / args.rate
    start = time.time()
    next_at = start
    while time.time() - start < args.seconds:
        took, at, key = writer.book()
        latencies.append(took)
        if key is None:
            refused += 1
        else:
            committed[key] = at
            keys.append(key)
            if observer:
                observer.committed(key.encode(), at)
        next_at += period
        time.sleep(max(0.0, next_at - time.time()))
    writer.conn.close()
    result = {
        "phase": name,
        "bookings": len(keys),
        "refused": refused,
        "write_p50_ms": percentile(latencies, 50) * 1e3,
        "write_p99_ms": percentile(latencies, 99) * 1e3,
    }
    if not proc:
        return result

    missing = observer.wait_all(args.drain)
    observer.counting = False
    cpu = proc_cpu_seconds(proc.pid) - cpu_before
    rss = proc_peak_rss_mb(proc.pid)
    observer.stop_flag = True
    observer.join()
    lags = list(observer.lag.values())
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)

    instant = committed[keys[len(keys) // 2]] + 0.0005
    latest_out = os.path.join(workdir, f"{name}-latest.sqlite")
    pit_out = os.path.join(workdir, f"{name}-pit.sqlite")
    if name == "hotel-backup":
        base = [args.hotel_backup, "--json", "--scratch-dir", os.path.join(workdir, "scratch"),
                "restore"]
        renv = dict(env, DATABASE_URL=f"sqlite://{path}", BACKUP_DIR=repo)
        latest_cmd = base + ["--latest", "--to", f"sqlite://{latest_out}"]
        pit_cmd = base + ["--to-time", iso(instant), "--to", f"sqlite://{pit_out}"]
    else:
        renv = env
        latest_cmd = [args.litestream, "restore", "-config", config, "-o", latest_out, path]
        pit_cmd = [args.litestream, "restore", "-config", config, "-o", pit_out,
                   "-timestamp", iso(instant), path]
    result.update(
        snapshot_seconds=snapshot_seconds,
        snapshot_mb=snapshot_bytes / 1e6,
        lag_p50_ms=percentile(lags, 50) * 1e3,
        lag_p99_ms=percentile(lags, 99) * 1e3,
        lag_max_ms=max(lags) * 1e3 if lags else float("nan"),
        not_shipped=missing,
        cpu_seconds=cpu,
        peak_rss_mb=rss,
        log_objects=observer.log_objects,
        bytes_per_booking=observer.log_bytes / max(1, len(keys)),
        restore_latest=restore_checked(latest_cmd, renv, latest_out, keys),
        restore_pit=restore_checked(pit_cmd, renv, pit_out, keys, cutoff=instant, committed=committed),
    )
    return result


def markdown(results, args):
    by = {r["phase"]: r for r in results}
    ours, ls, base = by["hotel-backup"], by["litestream"], by["baseline"]

    def ratio(a, b):
        return f"{a / b:.2f}" if b else "–"

    rows = [
        ("replication lag p50 (ms)", "lag_p50_ms", "{:.0f}"),
        ("replication lag p99 (ms)", "lag_p99_ms", "{:.0f}"),
        ("replication lag max (ms)", "lag_max_ms", "{:.0f}"),
        ("bookings not shipped after the drain", "not_shipped", "{}"),
        ("replicator CPU seconds during the load", "cpu_seconds", "{:.2f}"),
        ("replicator peak RSS (MiB)", "peak_rss_mb", "{:.1f}"),
        ("log bytes uploaded per booking", "bytes_per_booking", "{:.0f}"),
        ("log objects uploaded", "log_objects", "{}"),
        ("initial snapshot (MB uploaded)", "snapshot_mb", "{:.1f}"),
        ("initial snapshot (s)", "snapshot_seconds", "{:.1f}"),
    ]
    out = [
        f"Load: {args.rate} create-booking transactions/s for {args.seconds} s per phase, "
        f"database {args.db} ({os.path.getsize(args.db) / 1e6:.0f} MB).",
        "",
        "| | hotel-backup | Litestream | ratio (ours / Litestream) |",
        "|---|---:|---:|---:|",
    ]
    for label, key, fmt in rows:
        out.append(f"| {label} | {fmt.format(ours[key])} | {fmt.format(ls[key])} | {ratio(ours[key], ls[key])} |")
    for label, key in (("restore --latest (s)", "restore_latest"), ("restore to a point in time (s)", "restore_pit")):
        a, b = ours[key]["seconds"], ls[key]["seconds"]
        out.append(f"| {label} | {a:.2f} | {b:.2f} | {ratio(a, b)} |")
        check = ours[key]["check_seconds"]
        if check is not None:
            out.append(f"| {label[:-4]} without its checks (s) | {a - check:.2f} | {b:.2f} | "
                       f"{ratio(a - check, b)} |")
            out.append(f"| of which integrity_check + foreign_key_check (s) | {check:.2f} | – | – |")
        after = ls[key].get("checked_after_seconds")
        if after is not None:
            out.append(f"| {label[:-4]}, Litestream's then checked with the same pragmas (s) | "
                       f"{a:.2f} | {b + after:.2f} | {ratio(a, b + after)} |")
    for r in (ours, ls):
        out.append("")
        out.append(f"- {r['phase']}: restore --latest holds {r['restore_latest']['bookings']} of "
                   f"{r['bookings']} bookings (missing {r['restore_latest']['missing']}); the "
                   f"point-in-time restore holds {r['restore_pit']['bookings']}, "
                   f"{r['restore_pit']['after_instant']} committed after the instant, "
                   f"{r['restore_pit']['missing_before_instant_minus_1s']} missing of those "
                   f"committed a second before it.")
    out += [
        "",
        "| writer (create-booking) | no replication | hotel-backup | Litestream |",
        "|---|---:|---:|---:|",
        f"| p50 (ms) | {base['write_p50_ms']:.2f} | {ours['write_p50_ms']:.2f} | {ls['write_p50_ms']:.2f} |",
        f"| p99 (ms) | {base['write_p99_ms']:.2f} | {ours['write_p99_ms']:.2f} | {ls['write_p99_ms']:.2f} |",
        f"| bookings (refused: no room) | {base['bookings']} ({base['refused']}) | "
        f"{ours['bookings']} ({ours['refused']}) | {ls['bookings']} ({ls['refused']}) |",
    ]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True, help="a migrated, seeded SQLite database (copied per phase)")
    p.add_argument("--hotel-backup", default="target/release/hotel-backup")
    p.add_argument("--litestream", default="/tmp/ls/node_modules/@flydotio/litestream-linux-x64/litestream")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--rate", type=float, default=50, help="bookings per second")
    p.add_argument("--list-every", type=float, default=0.02, help="seconds between listings")
    p.add_argument("--drain", type=float, default=30, help="seconds to wait for the last bookings")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--phases", default="baseline,hotel-backup,litestream")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args()

    src = sqlite3.connect(args.db)
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    moto = Moto()
    workdir = tempfile.mkdtemp(prefix="replication-bench-")
    results = []
    try:
        for name in args.phases.split(","):
            print(f"== {name}", file=sys.stderr, flush=True)
            r = run_phase(args, moto, name, workdir)
            print(json.dumps(r, indent=1), file=sys.stderr, flush=True)
            results.append(r)
            for f in os.listdir(workdir):
                if f.startswith(name) and f.endswith(".sqlite"):
                    os.remove(os.path.join(workdir, f))
    finally:
        moto.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if len(results) == 3:
        table = markdown(results, args)
        print(table)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(table)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
