"""Start-up latency of `catalog query`, beside the floors it is measured against.

Prints the median wall time over N runs (default 10) of:
  python -c pass                      the interpreter alone
  python -c "import sqlalchemy"       the floor for any SQLAlchemy-based CLI
  catalog query --license apache-2.0 --min-context 128000
  sqlite3 FILE "<the same SELECT>"    the database work alone, in C

Usage: python bench/cli_latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY_ARGS = ["query", "--license", "apache-2.0", "--min-context", "128000"]
SQL = ("SELECT id, hub_id, params_b, max_context, license_id, size_bucket, primary_category, kind "
       "FROM model_facets WHERE license_id IN ('apache-2.0') AND max_context >= 128000 ORDER BY id")  # fmt: skip


def median_seconds(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    catalog = str(bindir / "catalog")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        subprocess.run([catalog, "seed", "--db", url], capture_output=True, check=True)
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ('python -c "import sqlalchemy"', [sys.executable, "-c", "import sqlalchemy"]),
            ("catalog " + " ".join(QUERY_ARGS), [catalog, *QUERY_ARGS, "--db", url]),
        ]
        if shutil.which("sqlite3"):
            rows.append(("sqlite3 (same SELECT)", ["sqlite3", str(db), SQL]))
        results = [(name, median_seconds(cmd, args.runs)) for name, cmd in rows]
    floor = dict(results)['python -c "import sqlalchemy"']
    print(f"median of {args.runs} runs")
    print(f"{'command':<60} {'median ms':>10} {'x sqlalchemy floor':>20}")
    for name, secs in results:
        print(f"{name:<60} {secs * 1000:>10.1f} {secs / floor:>20.2f}")
    ratio = dict(results)["catalog " + " ".join(QUERY_ARGS)] / floor
    print(f"\ngoal: catalog query <= 2.00x the sqlalchemy floor; measured {ratio:.2f}x")


if __name__ == "__main__":
    main()
