"""Two processes seeding and writing the same database at once: no lock errors, no lost rows."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import text

from catalog import db as dbmod

from .conftest import console_script

MODEL = """  - id: {key}
    name: {key}
    hub_id: test/{key}
    family: synthetic
    architecture: LlamaForCausalLM
    kind: causal-lm
    params_b: {params}
    native_context: 4096
    max_context: 4096
    license_id: apache-2.0
    primary_category: general_purpose
    sources: [https://example.org/{key}]
"""


def _fixture(path: Path, prefix: str, start: int, count: int) -> Path:
    body = "".join(MODEL.format(key=f"{prefix}_{i}", params=1 + i % 50) for i in range(start, start + count))
    path.write_text("models:\n" + body)
    return path


def test_two_writers_at_once(db_url: str, tmp_path: Path) -> None:
    catalog = console_script("catalog")
    rounds, per_round = 4, 25
    scripts = []
    for prefix in ("a", "b"):
        files = [_fixture(tmp_path / f"{prefix}{r}.yaml", prefix, r * per_round, per_round) for r in range(rounds)]
        # Each writer migrates the (initially empty) database, then seeds round after round,
        # so the two interleave migrations, upserts of the same built-in rows, and new rows.
        cmds = " && ".join(f"{catalog} seed --db '{db_url}' --fixtures {f}" for f in files)
        scripts.append(cmds)
    procs = [subprocess.Popen(["bash", "-c", s], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in scripts]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert "locked" not in err
    engine = dbmod.make_engine(db_url)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT COUNT(*) FROM model")).scalar_one()
        synthetic = conn.execute(text("SELECT COUNT(*) FROM model WHERE family = 'synthetic'")).scalar_one()
        primaries = conn.execute(text("SELECT COUNT(*) FROM category_model WHERE is_primary")).scalar_one()
    engine.dispose()
    assert synthetic == 2 * rounds * per_round
    assert total == 43 + synthetic
    assert primaries == total
