#!/usr/bin/env bash
# Side by side: `hotel-backup create`, `verify`, `verify --quick` of the same database with two
# builds (A, B), interleaved, each ROUNDS times. Prints one line per run: binary command elapsed user sys.
# Usage: scripts/verify_old_new.sh <db file> <hotel-backup A> <hotel-backup B> [rounds]
set -euo pipefail
db=$1; a=$2; b=$3; rounds=${4:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DATABASE_URL="sqlite://$db"
for bin in "$a" "$b"; do
  d="$work/$(basename "$bin")"; mkdir -p "$d"
  BACKUP_DIR="$d" "$bin" create >/dev/null
done
for r in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    d="$work/$(basename "$bin")"
    for cmd in create verify "verify --quick"; do
      /usr/bin/time -f "$(basename "$bin") ${cmd// /_} %e %U %S" env BACKUP_DIR="$d" "$bin" $cmd >/dev/null 2>>"$work/times" || echo "$(basename "$bin") $cmd FAILED"
      tail -1 "$work/times"
    done
  done
done
