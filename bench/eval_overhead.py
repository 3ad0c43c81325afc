"""What the evaluator costs on top of generation, and what batching buys over the seed framework.

The same GSM8K prompts (5-shot, lm-eval format) and settings through:
  (a) `evaluator run` (runner.execute: data loading, prompts, generation, scoring, database writes)
  (b) raw batched `model.generate`, same batch size, same stop strings, nothing else
  (c) a per-prompt loop of `model.generate` (how the seed framework ran)
and the backend's own `generate` on the same prompts, which separates what the runner adds from
what the backend saves over (b). All run a tiny local Llama (the same kind the tests build),
loaded once, outside every timing. Prints samples/s for each, the overhead of (a) over (b) and
over the backend alone, and (a) against (c).

Usage: python bench/eval_overhead.py [--docs 64] [--batch-size 16] [--max-tokens 128] [--repeats 3]
       [--data-dir ../shared/data/gsm8k]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all variants (median reported)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "gsm8k")
    args = parser.parse_args()

    import torch

    from catalog import db as dbmod
    from evaluator import runner
    from evaluator.backends.hf import HFBackend
    from evaluator.data import DataSource, load_docs
    from tiny_model import build_tiny_model, seed_catalog

    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = DataSource(data_dir=args.data_dir)
        corpus = (args.data_dir / "train.jsonl").read_text().splitlines()[:2000]
        model_dir = build_tiny_model(tmp / "tiny", corpus)
        url = seed_catalog(f"sqlite:///{tmp / 'bench.db'}", tmp)
        engine = dbmod.make_engine(url)
        with engine.connect() as conn:
            plan = runner.plan_run(conn, "tiny_llama", "gsm8k", runner.RunOptions(
                model_path=str(model_dir), samples=args.docs, batch_size=args.batch_size,
                max_tokens=args.max_tokens, fresh=True), source)  # fmt: skip
        backend = HFBackend(str(model_dir), batch_size=args.batch_size)

        class Preloaded:  # the evaluator gets the already-loaded model, like (b) and (c)
            def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
                return getattr(backend, name)

            def close(self) -> None:
                pass

        docs = load_docs(plan.task, source, args.docs)
        prompts = [plan.task.prompt(d).text for d in docs]
        tok, model = backend.tokenizer, backend.model
        kwargs = dict(max_new_tokens=args.max_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                      pad_token_id=tok.pad_token_id, stop_strings=list(plan.params.stop), tokenizer=tok)  # fmt: skip
        ordered = sorted(prompts, key=len, reverse=True)
        results = []

        def evaluator_run() -> None:
            results.append(runner.execute(engine, plan, lambda p: Preloaded(), progress=None))  # type: ignore[arg-type,return-value]

        def raw_batched() -> None:
            with torch.inference_mode():
                for i in range(0, len(ordered), args.batch_size):
                    enc = tok(ordered[i : i + args.batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False)  # fmt: skip
                    out = model.generate(**enc, **kwargs)
                    tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

        def per_prompt() -> None:
            with torch.inference_mode():
                for p in prompts:
                    enc = tok([p], return_tensors="pt", add_special_tokens=False)
                    out = model.generate(**enc, **kwargs)
                    tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

        def backend_only() -> None:
            backend.generate(prompts, plan.params)

        variants = {"(a) evaluator run (runner.execute)": evaluator_run, "(b) raw batched model.generate": raw_batched,
                    "(c) per-prompt generate loop": per_prompt, "    the backend's generate alone": backend_only}  # fmt: skip
        # Warm-up, so no variant pays for first-call costs; then rounds in rotating order, so that a
        # machine that gets busier or quieter during the bench does not favour one variant.
        backend.generate(prompts[: args.batch_size], plan.params)
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - t)

    n = len(prompts)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    a, b, c, own = (med[name] for name in names)
    print(f"{n} GSM8K prompts (5-shot), batch {args.batch_size}, max_tokens {args.max_tokens}, tiny Llama on CPU, "
          f"{torch.get_num_threads()} torch threads; median of {args.repeats} rotating rounds")  # fmt: skip
    print(f"{'variant':<40} {'median s':>9} {'samples/s':>10}   all rounds (s)")
    for name in names:
        print(f"{name:<40} {med[name]:>9.2f} {n / med[name]:>10.1f}   {' '.join(f'{t:.2f}' for t in times[name])}")
    print(f"\noverhead of (a) over (b): {(a / b - 1) * 100:+.1f}%   (goal: under 5%)")
    print(f"what the runner adds to its backend's generate: {(a / own - 1) * 100:+.1f}%")
    print(f"(a) vs (c): {c / a:.1f}x faster   (goal: at least 5x)")
    last = results[-1]
    print(f"run {last.run_id}: {', '.join(f'{k}={v.value:.3f}' for k, v in last.metrics.items())}")


if __name__ == "__main__":
    main()
