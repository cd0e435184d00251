#!/usr/bin/env python3
"""PostgreSQL point-in-time recovery: hotel-backup against pgBackRest, side by side.

One run, one PostgreSQL cluster this script creates (initdb in a temporary directory, on a
free port, as the `postgres` user when run as root), the hotel dataset loaded once, the same
booking load for both tools, both repositories on local directories. For every round and
every tool (the order alternates between rounds, so a noisy machine hurts both alike):

  1. archive_command = the tool (`hotel-backup wal-push %p` or `pgbackrest archive-push %p`,
     both synchronous, one process per segment, as PostgreSQL runs them); the archiver is
     drained first so the other tool's segments never land in this one's archive;
  2. base backup      `hotel-backup base-backup` against `pgbackrest backup --type=full`
     (both with an immediate checkpoint): wall time and the size it adds to the repository;
  3. archive throughput: archive_command is emptied (PostgreSQL keeps the WAL), --segments
     full segments of real WAL are written (copies of the bookings table), then the tool is
     put back and the time until pg_stat_archiver reports the last of them archived is taken:
     segments per second, and the compressed bytes per segment;
  4. archive lag under load: --rate create-booking transactions per second for --seconds,
     while the WAL is switched every --switch-every seconds; a segment's lag is the first
     moment pg_stat_archiver (polled every 20 ms) reports it archived minus the moment
     pg_switch_wal() closed it. failed_count is reported too;
  5. restore to a point in time (the commit time of the middle booking of the load) into a
     new data directory (`hotel-backup restore --pgdata --to-time` against
     `pgbackrest restore --type=time --target-action=promote`), then PostgreSQL is started on
     it and timed until it has replayed to the target and promoted. The result is checked:
     every booking committed a second before the instant is there, none committed after it.

Ratios are hotel-backup / pgBackRest: below 1 hotel-backup is faster (or smaller), except
for segments per second, where above 1 is faster.

Usage (`just bench-pitr` builds, then runs this):

  python3 scripts/pitr_vs_pgbackrest.py --hotel-backup target/release/hotel-backup \
      --migration target/release/migration --dataset target/release/dataset \
      --scale medium --rounds 2 --markdown target/bench-pitr/result.md

Needs PostgreSQL's server programs (Debian: /usr/lib/postgresql/<v>/bin), pg_basebackup,
pgbackrest (`apt-get install pgbackrest`) and psycopg2 (`pip install psycopg2-binary`).
"""

import argparse
import json
import os
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import free_port, percentile  # noqa: E402

TOOLS = ("hotel-backup", "pgbackrest")
STANZA = "bench"


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def pg_bin_dir():
    base = "/usr/lib/postgresql"
    versions = sorted((int(v) for v in os.listdir(base) if v.isdigit()), reverse=True)
    for v in versions:
        d = os.path.join(base, str(v), "bin")
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise SystemExit("no /usr/lib/postgresql/<version>/bin/initdb")


class Runner:
    """Runs programs as the user PostgreSQL runs as (postgres when this script is root)."""

    def __init__(self, workdir):
        self.as_postgres = os.geteuid() == 0
        self.workdir = workdir
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def own(self, path):
        if self.as_postgres:
            os.chown(path, self.uid, self.gid)

    def mkdir(self, path, mode=0o700):
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
        self.own(path)

    def kwargs(self, env):
        kw = {"env": dict(os.environ, HOME=self.workdir, **(env or {})), "cwd": self.workdir}
        if self.as_postgres:
            kw.update(user=self.uid, group=self.gid, extra_groups=[])
        return kw

    def run(self, command, env=None, check=True, quiet=True):
        done = subprocess.run(command, capture_output=True, **self.kwargs(env))
        if check and done.returncode != 0:
            raise SystemExit(
                f"{' '.join(command)} failed ({done.returncode}):\n"
                f"{done.stdout.decode()[-2000:]}\n{done.stderr.decode()[-4000:]}"
            )
        if not quiet:
            sys.stderr.write(done.stdout.decode())
        return done

    def timed(self, command, env=None):
        began = time.perf_counter()
        self.run(command, env=env)
        return time.perf_counter() - began


class Cluster:
    """A PostgreSQL cluster in `pgdata`, on `port`, sockets in `sock`."""

    def __init__(self, runner, bin_dir, pgdata, sock, port):
        self.r, self.bin, self.pgdata, self.sock, self.port = runner, bin_dir, pgdata, sock, port

    def start(self, extra=""):
        self.r.run([
            os.path.join(self.bin, "pg_ctl"), "-D", self.pgdata, "-w", "-t", "600",
            "-l", self.pgdata + ".log", "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sock} {extra}",
            "start",
        ])

    def stop(self):
        self.r.run([os.path.join(self.bin, "pg_ctl"), "-D", self.pgdata, "-m", "fast", "-w",
                    "stop"], check=False)

    def connect(self, db="postgres"):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db)
        conn.autocommit = True
        return conn

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"


def one(conn, sql, params=None):
    with conn.cursor() as c:
        c.execute(sql, params)
        return c.fetchone() if c.description else None


class Writer:
    """The create-booking transaction of optimized_queries::create_booking, in SQL: read the
    price, take a room on every night of the stay, insert the booking with a unique key."""

    def __init__(self, cluster, tag, seed):
        self.conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                     dbname="hotel")
        self.rng = random.Random(seed)
        self.tag = tag
        self.n = 0
        with self.conn.cursor() as c:
            c.execute("SELECT id FROM room_types")
            self.types = [r[0] for r in c.fetchall()]
            c.execute("SELECT min(id), max(id) FROM users")
            self.users = c.fetchone()
            c.execute("SELECT min(date), max(date) FROM room_inventory")
            self.first, last = c.fetchone()
        self.conn.commit()
        self.days = (last - self.first).days - 4

    def book(self):
        """One booking: (commit time, key), key None when no room was free."""
        self.n += 1
        key = f"pitrbench-{self.tag}-{self.n:07d}-{self.rng.getrandbits(40):010x}"
        room_type = self.rng.choice(self.types)
        start = self.first + timedelta(days=self.rng.randrange(self.days))
        nights = self.rng.randint(1, 3)
        end = start + timedelta(days=nights)
        user = self.rng.randint(*self.users)
        now = datetime.now(timezone.utc)
        with self.conn.cursor() as c:
            c.execute("SELECT price_per_night FROM room_types WHERE id = %s", (room_type,))
            (price,) = c.fetchone()
            c.execute(
                "UPDATE room_inventory SET available_rooms = available_rooms - 1 "
                "WHERE room_type_id = %s AND date >= %s AND date < %s AND available_rooms >= 1",
                (room_type, start, end),
            )
            if c.rowcount != nights:
                self.conn.rollback()
                return time.time(), None
            total = price * nights
            c.execute(
                "INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, "
                "status, total_price, deposit_amount, is_deposit_paid, idempotency_key, "
                "created_at, updated_at) VALUES (%s, %s, %s, %s, 1, 'PROVISIONAL', %s, %s, false, "
                "%s, %s, %s)",
                (user, room_type, start, end, total, total * 30 // 100, key, now, now),
            )
        self.conn.commit()
        return time.time(), key


class ArchiverWatch(threading.Thread):
    """Polls pg_stat_archiver; `archived_at(segment)` is when it was first seen archived."""

    def __init__(self, cluster, every=0.02):
        super().__init__(daemon=True)
        self.conn = cluster.connect()
        self.every = every
        self.lock = threading.Lock()
        self.seen = []  # (poll time, last_archived_wal), last_archived_wal increasing
        self.failed = 0
        self.stop_flag = False

    def poll(self):
        wal, failed = one(self.conn, "SELECT last_archived_wal, failed_count FROM pg_stat_archiver")
        return time.time(), wal, failed

    def run(self):
        while not self.stop_flag:
            at, wal, failed = self.poll()
            with self.lock:
                self.failed = failed
                if wal and (not self.seen or wal > self.seen[-1][1]):
                    self.seen.append((at, wal))
            time.sleep(self.every)

    def archived_at(self, segment):
        with self.lock:
            for at, wal in self.seen:
                if wal[:24] >= segment:
                    return at
        return None

    def wait_for(self, segment, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            at = self.archived_at(segment)
            if at is not None:
                return at
            time.sleep(0.01)
        raise SystemExit(f"{segment} was not archived within {timeout} s (failed runs: {self.failed})")


def segment_number(name, seg_size):
    """The position of segment `name` in its timeline."""
    return int(name[8:16], 16) * (0x1_0000_0000 // seg_size) + int(name[16:24], 16)


def switch_wal(conn):
    """Closes the current segment; returns its name (or None when it held nothing new)."""
    (name,) = one(conn, "SELECT pg_walfile_name(pg_switch_wal())")
    return name


class Bench:
    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="pitr-bench-", dir=args.workdir)
        os.chmod(self.workdir, 0o755)
        self.r = Runner(self.workdir)
        self.r.own(self.workdir)
        self.bin = args.pg_bin or pg_bin_dir()
        self.sock = os.path.join(self.workdir, "sock")
        self.r.mkdir(self.sock, 0o755)
        # The measured programs are copied: a rebuild during the run changes nothing.
        self.hotel = os.path.join(self.workdir, "hotel-backup")
        shutil.copy(args.hotel_backup, self.hotel)
        os.chmod(self.hotel, 0o755)
        self.repo = {t: os.path.join(self.workdir, f"repo-{t}") for t in TOOLS}
        for d in self.repo.values():
            self.r.mkdir(d)
        self.conf = os.path.join(self.workdir, "pgbackrest.conf")
        self.cluster = Cluster(self.r, self.bin, os.path.join(self.workdir, "pgdata"), self.sock,
                               free_port())
        with open(self.conf, "w") as f:
            f.write(
                f"[global]\nrepo1-path={self.repo['pgbackrest']}\nrepo1-retention-full=100\n"
                f"lock-path={self.workdir}/pgbackrest-lock\nspool-path={self.workdir}/spool\n"
                f"log-path={self.workdir}/pgbackrest-log\nlog-level-console=warn\n"
                f"log-level-file=off\nstart-fast=y\n"
                + (f"compress-type={args.pgbackrest_compress}\n" if args.pgbackrest_compress else "")
                + f"\n[{STANZA}]\npg1-path={self.cluster.pgdata}\npg1-port={self.cluster.port}\n"
                f"pg1-socket-path={self.sock}\npg1-user=postgres\n"
            )
        os.chmod(self.conf, 0o644)

    def pgbackrest(self, *words):
        return ["pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", *words]

    def hotel_cmd(self, *words):
        return [self.hotel, "-d", self.repo["hotel-backup"], *words]

    def archive_command(self, tool):
        if tool == "hotel-backup":
            return f"{self.hotel} -d {self.repo['hotel-backup']} wal-push %p"
        return f"pgbackrest --config={self.conf} --stanza={STANZA} archive-push %p"

    def set_archive_command(self, conn, command):
        with conn.cursor() as c:
            c.execute("ALTER SYSTEM SET archive_command = %s", (command,))
            c.execute("SELECT pg_reload_conf()")
        # The archiver reads the new setting on its next cycle.
        time.sleep(0.5)

    def setup(self):
        a = self.args
        c = self.cluster
        self.r.run([os.path.join(self.bin, "initdb"), "-D", c.pgdata, "-U", "postgres",
                    "--auth=trust", "--no-sync"])
        with open(os.path.join(c.pgdata, "postgresql.conf"), "a") as f:
            f.write(
                "\nwal_level = replica\narchive_mode = on\narchive_command = ''\n"
                "max_wal_senders = 4\nmax_wal_size = 4GB\nshared_buffers = 128MB\n"
                "log_min_messages = warning\n"
            )
        c.start()
        admin = c.connect()
        one(admin, "CREATE DATABASE hotel")
        env = {"DATABASE_URL": c.url("hotel"), "BACKUP_DIR": os.path.join(self.workdir, "dumps"),
               "RUST_LOG": "warn"}
        began = time.perf_counter()
        self.r.run([a.migration, "up"], env=env)
        self.r.run([a.dataset, "--scale", a.scale, "--reference-date", a.reference_date], env=env)
        load_seconds = time.perf_counter() - began
        one(admin, "CHECKPOINT")
        hotel = c.connect("hotel")
        (size,) = one(hotel, "SELECT pg_database_size('hotel')")
        (bookings,) = one(hotel, "SELECT count(*) FROM bookings")
        print(f"dataset {a.scale}: {bookings} bookings, {size / 1e6:.0f} MB, loaded in "
              f"{load_seconds:.0f} s", file=sys.stderr, flush=True)
        self.r.run(self.pgbackrest("stanza-create"))
        self.dataset = {"scale": a.scale, "bookings": bookings, "database_mb": size / 1e6}
        self.admin = admin
        self.hotel_conn = hotel
        self.watch = ArchiverWatch(c)
        self.watch.start()

    def drain(self):
        """Switches and waits until the archiver has archived everything before now."""
        name = switch_wal(self.admin)
        if name:
            self.watch.wait_for(name, 600)

    def base_backup(self, tool):
        sub = {"hotel-backup": "base", "pgbackrest": "backup"}[tool]
        before = dir_bytes(os.path.join(self.repo[tool], sub))
        if tool == "hotel-backup":
            took = self.r.timed(self.hotel_cmd("-u", self.cluster.url("hotel"), "base-backup"),
                                env={"PG_BASEBACKUP": os.path.join(self.bin, "pg_basebackup"),
                                     "RUST_LOG": "warn"})
        else:
            took = self.r.timed(self.pgbackrest("backup", "--type=full"))
        return took, (dir_bytes(os.path.join(self.repo[tool], sub)) - before) / 1e6

    def throughput(self, tool):
        """Archives --segments full segments of real WAL: segments per second."""
        wal_dir = os.path.join(self.repo[tool], "wal" if tool == "hotel-backup" else "archive")
        self.set_archive_command(self.admin, "")
        h = self.hotel_conn
        one(h, "DROP TABLE IF EXISTS wal_filler")
        one(h, "CREATE TABLE wal_filler (LIKE bookings)")
        (start_lsn,) = one(h, "SELECT pg_current_wal_lsn()")
        (seg_size,) = one(h, "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
        target = self.args.segments * seg_size
        while True:
            one(h, "INSERT INTO wal_filler SELECT * FROM bookings")
            (written,) = one(h, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (start_lsn,))
            if written >= target:
                break
        last = switch_wal(self.admin)
        (first,) = one(h, "SELECT pg_walfile_name(%s)", (start_lsn,))
        count = segment_number(last, seg_size) - segment_number(first, seg_size) + 1
        before = dir_bytes(wal_dir)
        began = time.time()
        self.set_archive_command(self.admin, self.archive_command(tool))
        # set_archive_command slept 0.5 s so the archiver sees it: that is part of both times.
        done = self.watch.wait_for(last, 1800)
        stored = dir_bytes(wal_dir) - before
        one(h, "DROP TABLE wal_filler")
        return {
            "segments": count,
            "seconds": done - began,
            "segments_per_s": count / (done - began),
            "mb_per_segment": stored / count / 1e6,
        }

    def load(self, tool, tag):
        """The booking load with forced switches: per-segment lag and the commit times."""
        a = self.args
        writer = Writer(self.cluster, tag, a.seed)
        switcher = self.cluster.connect()
        switched = []  # (segment, time)
        committed = {}
        stop = threading.Event()

        def switch_loop():
            while not stop.wait(a.switch_every):
                at = time.time()
                name = switch_wal(switcher)
                # A switch with no new WAL closes nothing: it names the segment closed before.
                if name and (not switched or name > switched[-1][0]):
                    switched.append((name, at))

        failed_before = self.watch.failed
        t = threading.Thread(target=switch_loop, daemon=True)
        t.start()
        period = 1.0 / a.rate
        start = time.time()
        next_at = start
        while time.time() - start < a.seconds:
            at, key = writer.book()
            if key:
                committed[key] = at
            next_at += period
            time.sleep(max(0.0, next_at - time.time()))
        stop.set()
        t.join()
        writer.conn.close()
        at = time.time()
        last = switch_wal(switcher)
        if last and (not switched or last > switched[-1][0]):
            switched.append((last, at))
        self.watch.wait_for(switched[-1][0], 600)
        lags = [self.watch.archived_at(name) - at for name, at in switched]
        return committed, {
            "bookings": len(committed),
            "switches": len(switched),
            "lag_p50_ms": percentile(lags, 50) * 1e3,
            "lag_p99_ms": percentile(lags, 99) * 1e3,
            "lag_max_ms": max(lags) * 1e3,
            "failed_archive_runs": self.watch.failed - failed_before,
        }

    def restore(self, tool, tag, committed):
        """Restores to the commit time of the middle booking; checks and times it."""
        keys = sorted(committed, key=committed.get)
        instant = committed[keys[len(keys) // 2]] + 0.0005
        text = datetime.fromtimestamp(instant, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        pgdata = os.path.join(self.workdir, f"restored-{tag}")
        if tool == "hotel-backup":
            took = self.r.timed(self.hotel_cmd("restore", "--pgdata", pgdata, "--to-time", text),
                                env={"RUST_LOG": "warn"})
        else:
            self.r.mkdir(pgdata)
            took = self.r.timed(self.pgbackrest(
                f"--pg1-path={pgdata}", "restore", "--type=time",
                f"--target={text.replace('T', ' ').replace('Z', '+00')}",
                "--target-action=promote"))
        restored = Cluster(self.r, self.bin, pgdata, self.sock, free_port())
        began = time.perf_counter()
        # archive_mode off: the drill must not archive its new timeline into the repository.
        restored.start("-c archive_mode=off")
        conn = restored.connect()
        deadline = time.time() + 1800
        while one(conn, "SELECT pg_is_in_recovery()")[0]:
            if time.time() > deadline:
                raise SystemExit(f"{pgdata} did not finish recovery")
            time.sleep(0.05)
        replay = time.perf_counter() - began
        conn.close()
        h = restored.connect("hotel")
        with h.cursor() as c:
            c.execute("SELECT idempotency_key FROM bookings WHERE idempotency_key LIKE %s",
                      (f"pitrbench-{tag}-%",))
            present = {r[0] for r in c.fetchall()}
        h.close()
        restored.stop()
        shutil.rmtree(pgdata, ignore_errors=True)
        return {
            "restore_s": took,
            "replay_s": replay,
            "total_s": took + replay,
            "after_instant": sum(1 for k in present if committed.get(k, 0) > instant),
            "missing_before_instant_minus_1s": sum(
                1 for k, at in committed.items() if at < instant - 1 and k not in present),
        }

    def phase(self, tool, round_no):
        tag = f"{tool.split('-')[0]}{round_no}"
        print(f"== round {round_no}: {tool}", file=sys.stderr, flush=True)
        # The previous phase waited for all of its segments; what the load between phases
        # wrote goes to this tool, before its base backup.
        self.set_archive_command(self.admin, self.archive_command(tool))
        self.drain()
        base_s, base_mb = self.base_backup(tool)
        thr = self.throughput(tool)
        committed, lag = self.load(tool, tag)
        pit = self.restore(tool, tag, committed)
        result = {"tool": tool, "round": round_no, "base_backup_s": base_s,
                  "base_backup_mb": base_mb, **{f"push_{k}": v for k, v in thr.items()},
                  **lag, **pit}
        print(json.dumps(result, indent=1), file=sys.stderr, flush=True)
        return result

    def close(self):
        if hasattr(self, "watch"):
            self.watch.stop_flag = True
        self.cluster.stop()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


ROWS = [
    ("base backup (s)", "base_backup_s", "{:.1f}"),
    ("base backup in the repository (MB)", "base_backup_mb", "{:.1f}"),
    ("archive-push: full segments per second", "push_segments_per_s", "{:.2f}"),
    ("archive-push: seconds for the segments", "push_seconds", "{:.1f}"),
    ("archive-push: MB stored per 16 MB segment", "push_mb_per_segment", "{:.2f}"),
    ("archive lag under load p50 (ms)", "lag_p50_ms", "{:.0f}"),
    ("archive lag under load p99 (ms)", "lag_p99_ms", "{:.0f}"),
    ("archive lag under load max (ms)", "lag_max_ms", "{:.0f}"),
    ("restore to a point in time: restore command (s)", "restore_s", "{:.1f}"),
    ("restore to a point in time: replay until promoted (s)", "replay_s", "{:.1f}"),
    ("restore to a point in time: total (s)", "total_s", "{:.1f}"),
]


def markdown(results, bench):
    a = bench.args
    by = {t: [r for r in results if r["tool"] == t] for t in TOOLS}

    def median(tool, key):
        return statistics.median(r[key] for r in by[tool])

    ds = bench.dataset
    out = [
        f"Dataset {ds['scale']} ({ds['bookings']} bookings, database {ds['database_mb']:.0f} MB); "
        f"{a.rounds} rounds, tools alternating; load {a.rate} bookings/s for {a.seconds} s with "
        f"a WAL switch every {a.switch_every} s; {a.segments} full segments for the push rate; "
        f"pgBackRest compress-type {a.pgbackrest_compress or 'gz (default)'}. Medians of the rounds.",
        "",
        "| | hotel-backup | pgBackRest | ratio (ours / pgBackRest) |",
        "|---|---:|---:|---:|",
    ]
    for label, key, fmt in ROWS:
        ours, theirs = median("hotel-backup", key), median("pgbackrest", key)
        ratio = f"{ours / theirs:.2f}" if theirs else "–"
        out.append(f"| {label} | {fmt.format(ours)} | {fmt.format(theirs)} | {ratio} |")
    out.append("")
    for t in TOOLS:
        for r in by[t]:
            out.append(
                f"- {t} round {r['round']}: {r['bookings']} bookings, {r['switches']} switched "
                f"segments, {r['failed_archive_runs']} failed archive runs; the restore holds "
                f"{r['after_instant']} bookings committed after the instant and misses "
                f"{r['missing_before_instant_minus_1s']} committed a second before it.")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hotel-backup", default="target/release/hotel-backup")
    p.add_argument("--migration", default="target/release/migration")
    p.add_argument("--dataset", default="target/release/dataset")
    p.add_argument("--scale", default="medium")
    p.add_argument("--reference-date", default="2026-11-25")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--segments", type=int, default=32, help="full segments for the push rate")
    p.add_argument("--seconds", type=float, default=30, help="seconds of booking load")
    p.add_argument("--rate", type=float, default=50, help="bookings per second")
    p.add_argument("--switch-every", type=float, default=1.0)
    p.add_argument("--pgbackrest-compress", default="", help="gz (default), lz4, zst, none")
    p.add_argument("--pg-bin", help="PostgreSQL's server programs (default: Debian's newest)")
    p.add_argument("--workdir", default=None, help="where the temporary directory goes")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args()
    for name in ("hotel_backup", "migration", "dataset"):
        setattr(args, name, os.path.abspath(getattr(args, name)))

    bench = Bench(args)
    results = []
    try:
        bench.setup()
        for round_no in range(1, args.rounds + 1):
            order = TOOLS if round_no % 2 else tuple(reversed(TOOLS))
            for tool in order:
                results.append(bench.phase(tool, round_no))
    finally:
        bench.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dataset": bench.dataset, "results": results}, f, indent=1)
    table = markdown(results, bench)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
