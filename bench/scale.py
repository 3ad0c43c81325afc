"""How the catalog behaves as it grows from 43 models to the size of a public model hub.

For each N given, on SQLite and on a throwaway PostgreSQL server:
  1. a fresh database, migrated and seeded with the built-in catalog;
  2. N synthetic but realistic models (families, licenses, sizes, contexts, categories drawn
     from skewed distributions like the hub's) imported through the same fixture loader as
     `catalog seed` (pydantic validation, then the idempotent upsert), in chunks of 50,000;
     prints the import throughput in models/s;
  3. p50/p95 latency of five typical faceted queries, issued through the same library
     functions the CLI calls.

Usage:  python bench/scale.py 10000 100000 1000000 [--backends sqlite,postgresql] [--repeat 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from catalog import db as dbmod  # noqa: E402
from catalog import fixtures as fx  # noqa: E402
from catalog import queries  # noqa: E402

CHUNK = 50_000
FAMILIES = ["llama", "qwen", "mistral", "gemma", "phi", "deepseek", "yi", "olmo", "falcon", "bert", "t5",
            "gpt2", "bloom", "starcoder", "biomistral", "meditron", "internlm", "baichuan", "granite", "smollm"]
LICENSES = [("apache-2.0", 40), ("mit", 15), ("llama3.1", 8), ("llama2", 8), ("other", 10), ("gemma", 4),
            ("cc-by-nc-4.0", 5), ("unknown", 6), ("cc-by-4.0", 2), ("llama3.2", 2)]
CONTEXTS = [(512, 8), (1024, 5), (2048, 12), (4096, 25), (8192, 18), (32768, 17), (131072, 13), (1048576, 2)]
CATEGORIES = ["coding_specialists", "mathematical_reasoning", "biomedical_specialists", "general_purpose",
              "multimodal_processing", "scientific_research", "efficiency_optimized", "safety_alignment"]
KINDS = [("causal-lm", 80), ("encoder", 10), ("vision-language", 8), ("encoder-decoder", 2)]  # fmt: skip


def _weighted(rng: random.Random, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def synthetic_models(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """N fixture entries in the seeds/ format; parameter counts log-uniform over 0.05B-500B."""
    rng = random.Random(seed)
    for i in range(n):
        family = rng.choice(FAMILIES)
        params = round(10 ** rng.uniform(-1.3, 2.7), 3)
        native = _weighted(rng, CONTEXTS)
        maximum = native * rng.choice([1, 1, 1, 2, 4])
        primary = rng.choice(CATEGORIES[:4])
        others = rng.sample([c for c in CATEGORIES if c != primary], k=rng.choice([0, 0, 1, 2]))
        quant = rng.choices(["none", "awq", "gptq", "fp8"], weights=[85, 8, 4, 3])[0]
        yield {
            "id": f"syn_{i:07d}",
            "name": f"{family.title()}-{params:g}B-v{i % 7}",
            "hub_id": f"org{i % 997}/{family}-{params:g}b-{i}",
            "family": family,
            "architecture": "LlamaForCausalLM",
            "kind": _weighted(rng, KINDS),
            "params_b": params,
            "native_context": native,
            "max_context": maximum,
            "license_id": _weighted(rng, LICENSES),
            "quantization": quant,
            "quantized_hub_id": None if quant == "none" else f"org{i % 997}/{family}-{params:g}b-{i}-{quant}",
            "gated": rng.random() < 0.1,
            "primary_category": primary,
            "other_categories": others,
            "sources": [f"https://huggingface.co/org{i % 997}/{family}-{params:g}b-{i}"],
        }


def import_models(url: str, n: int) -> float:
    """Import N synthetic models through the fixture loader; returns seconds."""
    engine = dbmod.make_engine(url)
    gen = synthetic_models(n)
    elapsed = 0.0
    done = 0
    while done < n:
        chunk = [next(gen) for _ in range(min(CHUNK, n - done))]  # generation is not timed
        start = time.perf_counter()
        loaded = fx.parse_documents([("synthetic", {"models": chunk})])
        fx.seed(engine, loaded)
        elapsed += time.perf_counter() - start
        done += len(chunk)
    # Steady state, as autovacuum would leave it: fresh statistics, and on PostgreSQL a set
    # visibility map so counts can be answered by index-only scans.
    if url.startswith("postgresql"):
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    engine.dispose()
    return elapsed


QUERIES: dict[str, Callable[[Any], Any]] = {
    "license+context": lambda c: queries.query_models(
        c, queries.ModelFilter(licenses=["apache-2.0"], min_context=128000), limit=100),
    "category+max params": lambda c: queries.query_models(
        c, queries.ModelFilter(category="biomedical_specialists", max_params=10), limit=100),
    "size distribution": queries.size_distribution,
    "license distribution": queries.license_distribution,
    "search text": lambda c: queries.query_models(c, queries.ModelFilter(search="meditron-7"), limit=100),
    "sort by context": lambda c: queries.query_models(c, queries.ModelFilter(), sort="-max_context", limit=20),
}  # fmt: skip


def time_queries(url: str, repeat: int) -> dict[str, tuple[float, float]]:
    engine = dbmod.make_engine(url, read_only=url.startswith("sqlite"))
    out = {}
    with engine.connect() as conn:
        for name, run in QUERIES.items():
            for _ in range(3):
                run(conn)
            samples = []
            for _ in range(repeat):
                t = time.perf_counter()
                run(conn)
                samples.append(time.perf_counter() - t)
            samples.sort()
            out[name] = (statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))])
    engine.dispose()
    return out


def fresh_database(backend: str, stack: ExitStack, n: int) -> str:
    if backend == "sqlite":
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        return f"sqlite:///{Path(tmp) / f'scale_{n}.db'}"
    from catalog.pgserver import throwaway_server

    if not hasattr(fresh_database, "server"):
        fresh_database.server = stack.enter_context(throwaway_server(("shared_buffers=512MB",)))  # type: ignore[attr-defined]
    server = fresh_database.server  # type: ignore[attr-defined]
    server.admin(f"DROP DATABASE IF EXISTS scale_{n}")
    server.admin(f"CREATE DATABASE scale_{n}")
    return server.url(f"scale_{n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", type=int, nargs="+", help="numbers of synthetic models, e.g. 10000 100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per query")
    args = parser.parse_args()
    header = "| backend | models | import models/s | " + " | ".join(f"{q} p50/p95 ms" for q in QUERIES) + " |"
    rows = []
    with ExitStack() as stack:
        for backend in args.backends.split(","):
            for n in args.sizes:
                url = fresh_database(backend, stack, n)
                dbmod.upgrade(url)
                engine = dbmod.make_engine(url)
                fx.seed(engine, fx.read_files(fx.builtin_fixture_files()))
                engine.dispose()
                seconds = import_models(url, n)
                lat = time_queries(url, args.repeat)
                cells = " | ".join(f"{p50 * 1000:.1f} / {p95 * 1000:.1f}" for p50, p95 in lat.values())
                row = f"| {backend} | {n:,} | {n / seconds:,.0f} | {cells} |"
                rows.append(row)
                print(row, flush=True)
    print("\n" + header)
    print("|" + "---|" * (3 + len(QUERIES)))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
