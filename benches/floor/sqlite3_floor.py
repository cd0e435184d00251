"""Python's sqlite3 on the same file and statements as the optimized-queries bench: a reference.

Reads a JSON job on stdin ({"database", "mmap_bytes", "cases": [...]}) and prints, as JSON,
the median microseconds of each case. A case is a list of runs; a run is either a list of
statements ({"sql", "params"}, numbered parameters by name) fetched with fetchall(), or, for
"user_two", a guest id: the page of bookings with room types, then its payments with IN.
Rows stay tuples: nothing is decoded into objects.
"""

import json
import sqlite3
import statistics
import sys
import time


def main():
    job = json.load(sys.stdin)
    con = sqlite3.connect(job["database"], isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA mmap_size = {int(job['mmap_bytes'])}")
    con.execute("PRAGMA query_only = 1")
    results = {}
    for case in job["cases"]:
        runs = case["runs"]
        iterations = case["iterations"]

        def run(i):
            item = runs[i % len(runs)]
            if case.get("kind") == "user_two":
                page = con.execute(case["page_sql"], (item,)).fetchall()
                if page:
                    ids = [row[0] for row in page]
                    marks = ", ".join("?" * len(ids))
                    con.execute(
                        "SELECT booking_id, id, amount, status, provider, paid_at, created_at "
                        f"FROM payments WHERE booking_id IN ({marks}) ORDER BY id",
                        ids,
                    ).fetchall()
            else:
                for statement in item:
                    con.execute(statement["sql"], statement["params"]).fetchall()

        for i in range(min(iterations, 3 * len(runs))):
            run(i)
        times = []
        for i in range(iterations):
            started = time.perf_counter_ns()
            run(i)
            times.append(time.perf_counter_ns() - started)
        results[case["name"]] = statistics.median(times) / 1000.0
    json.dump({"sqlite_version": sqlite3.sqlite_version, "median_us": results}, sys.stdout)


if __name__ == "__main__":
    main()
