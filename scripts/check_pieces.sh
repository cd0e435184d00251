#!/usr/bin/env bash
# Where a full verification's check spends its CPU: runs `hotel-backup verify` once with the check
# pieces' debug events on (RUST_LOG=backup=debug) and sums their thread CPU time by kind
# (quick_check per table, index entry scans, row scans, page accounting, foreign keys).
# Usage: DATABASE_URL=sqlite://<db> BACKUP_DIR=<repo with a backup> scripts/check_pieces.sh <hotel-backup>
set -euo pipefail
/usr/bin/time -f "TIME %e %U" env RUST_LOG=backup=debug "$1" verify 2>&1 >/dev/null | python3 -c '
import collections, json, sys
cpu = collections.Counter()
took = ["?", "?"]
for line in sys.stdin:
    if line.startswith("TIME"):
        took = line.split()[1:]
        continue
    try:
        fields = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if fields.get("message") != "check piece done":
        continue
    piece = fields["piece"]
    kind = piece.split("(")[0] if piece.startswith("PRAGMA") else piece.split(" ")[0]
    cpu[kind] += fields["cpu_us"] / 1e6
print("verify %ss, user %ss |" % tuple(took),
      " ".join("%s %.2f" % (k, v) for k, v in sorted(cpu.items())),
      "| check CPU %.2f s" % sum(cpu.values()))
'
