"""Peer check: our gsm8k against lm-evaluation-harness's own gsm8k, on the same model and rows.

1. Builds a tiny local Llama (the tests' kind) and a GSM8K test/train pair of local files
   (the first --limit rows of ../shared/data/gsm8k, or --data-dir).
2. In its own virtualenv (created on first use: torch==2.13.0 CPU, then lm-eval[hf]), runs
   lm-eval's real `gsm8k` task definition through a task YAML that includes it with
   `dataset_path: json` and local `data_files`, offline (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1).
3. Runs `evaluator run` on the same rows with the same shots and settings.
4. Compares per-sample extracted answers of both filters (strict-match, flexible-extract) and
   both metrics (they must agree exactly), and the wall time of each command.

Usage: python bench/vs_lm_eval.py [--limit 40] [--max-tokens 256] [--batch-size 8] [--venv PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
LM_EVAL = "lm-eval[hf]==0.4.13"
FILTERS = ("strict-match", "flexible-extract")



def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        print(f"creating {venv} (torch CPU + {LM_EVAL}); this takes a few minutes once", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)  # the CPU build; lm-eval would pull CUDA
        subprocess.run([*pip, LM_EVAL], check=True)
        (venv / ".ready").touch()
    return python


def run_lm_eval(python: Path, model_dir: Path, data: Path, work: Path, args: argparse.Namespace) -> tuple[float, dict]:
    gsm8k_yaml = subprocess.run(
        [str(python), "-c", "import lm_eval, pathlib; print(pathlib.Path(lm_eval.__file__).parent / 'tasks/gsm8k/gsm8k.yaml')"],
        capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tasks = work / "tasks"
    tasks.mkdir()
    (tasks / "gsm8k_local.yaml").write_text(
        f"include: {gsm8k_yaml}\ntask: gsm8k_local\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    train: {data / 'train.jsonl'}\n    test: {data / 'test.jsonl'}\n"
    )
    out = work / "lm_eval_out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(python), "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={model_dir},dtype=float32,add_bos_token=False",
           "--tasks", "gsm8k_local", "--include_path", str(tasks), "--batch_size", str(args.batch_size),
           "--gen_kwargs", f"max_gen_toks={args.max_tokens}", "--log_samples", "--output_path", str(out),
           "--seed", "0,1234,1234,1234", "--device", "cpu"]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"lm_eval failed:\n{proc.stderr[-3000:]}")
    samples = {f: {} for f in FILTERS}
    for path in out.rglob("samples_gsm8k_local_*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            resp = rec["filtered_resps"]
            while isinstance(resp, list):
                resp = resp[0]
            samples[rec["filter"]][str(rec["doc_id"])] = (resp, rec["exact_match"], rec["resps"][0][0])
    results = next(out.rglob("results_*.json"))
    metrics = json.loads(results.read_text())["results"]["gsm8k_local"]
    return seconds, {"samples": samples, "metrics": metrics}


def run_ours(model_dir: Path, data: Path, work: Path, args: argparse.Namespace) -> tuple[float, dict]:
    from sqlalchemy import text

    from catalog import db as dbmod
    from tiny_model import seed_catalog

    url = seed_catalog(f"sqlite:///{work / 'ours.db'}", work)
    engine = dbmod.make_engine(url)
    evaluator = str(Path(sys.executable).parent / "evaluator")
    cmd = [evaluator, "run", "--model", "tiny_llama", "--dataset", "gsm8k", "--samples", "all",
           "--max-tokens", str(args.max_tokens), "--batch-size", str(args.batch_size), "--fresh",
           "--model-path", str(model_dir), "--data-dir", str(data), "--db", url]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"evaluator run failed:\n{proc.stderr[-3000:]}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT doc_id, completion, details, scores FROM sample_result")).fetchall()
        metrics = dict(conn.execute(text("SELECT name, value FROM metric")).fetchall())
    samples: dict[str, dict[str, Any]] = {f: {} for f in FILTERS}
    for r in rows:
        details = json.loads(r.details) if isinstance(r.details, str) else (r.details or {})
        scores = json.loads(r.scores) if isinstance(r.scores, str) else r.scores
        for f in FILTERS:
            samples[f][r.doc_id] = (_extracted(details, f), scores[f"exact_match,{f}"], r.completion)
    return seconds, {"samples": samples, "metrics": metrics}


def _extracted(details: dict[str, Any], filter_name: str) -> Any:
    for key in (filter_name, filter_name.replace("-", "_"), f"extracted_{filter_name.replace('-', '_')}"):
        if key in details:
            return details[key]
    filtered = details.get("filtered") or details.get("extracted") or {}
    return filtered.get(filter_name) if isinstance(filtered, dict) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "gsm8k")
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "model-catalog-lm-eval-venv")
    args = parser.parse_args()
    python = ensure_venv(args.venv)
    from tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp_name:
        work = Path(tmp_name)
        data = work / "gsm8k"
        data.mkdir()
        test_rows = (args.data_dir / "test.jsonl").read_text().splitlines()[: args.limit]
        (data / "test.jsonl").write_text("\n".join(test_rows) + "\n")
        shutil.copy(args.data_dir / "train.jsonl", data / "train.jsonl")
        corpus = (args.data_dir / "train.jsonl").read_text().splitlines()[:2000]
        model_dir = build_tiny_model(work / "tiny", corpus)
        lm_seconds, theirs = run_lm_eval(python, model_dir, data, work, args)
        our_seconds, ours = run_ours(model_dir, data, work, args)

    print(f"GSM8K, {len(test_rows)} local rows, 5-shot, greedy, max_tokens {args.max_tokens}, "
          f"batch {args.batch_size}, tiny Llama on CPU")  # fmt: skip
    all_agree = True
    for f in FILTERS:
        a, b = theirs["samples"][f], ours["samples"][f]
        same_completion = sum(1 for k in a if k in b and a[k][2] == b[k][2])
        same_extract = sum(1 for k in a if k in b and a[k][0] == b[k][0])
        same_score = sum(1 for k in a if k in b and float(a[k][1]) == float(b[k][1]))
        lm_metric = theirs["metrics"].get(f"exact_match,{f}")
        our_metric = ours["metrics"].get(f"exact_match,{f}")
        agree = same_extract == len(a) == len(b) and same_score == len(a) and lm_metric == our_metric
        all_agree &= agree
        print(f"{f:<17} completions equal {same_completion}/{len(a)}  extracted equal {same_extract}/{len(a)}  "
              f"scores equal {same_score}/{len(a)}  metric lm-eval {lm_metric} vs ours {our_metric}")  # fmt: skip
        for k in list(a)[:50]:
            if k in b and a[k][0] != b[k][0]:
                print(f"   doc {k}: lm-eval {a[k][0]!r} vs ours {b[k][0]!r}")
    print(f"\nwall time: lm_eval {lm_seconds:.1f} s, evaluator run {our_seconds:.1f} s "
          f"({lm_seconds / our_seconds:.2f}x)")  # fmt: skip
    print("AGREE" if all_agree else "DISAGREE")


if __name__ == "__main__":
    main()
