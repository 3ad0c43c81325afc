"""Every ```sql block in docs/schema.md runs, unchanged, through the sqlite3 and psql clients,
and both databases give the same answer; so the BI documentation cannot rot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


def _client(url: str, sql: str) -> list[tuple[str, ...]]:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if not shutil.which("sqlite3"):
            pytest.skip("the sqlite3 command-line client is not installed")
        cmd = ["sqlite3", "-batch", "-bail", "-separator", "|", u.database]  # SQL on stdin
    else:
        if not shutil.which("psql"):
            pytest.skip("the psql command-line client is not installed")
        conninfo = f"postgresql://{u.username}@{u.host}:{u.port}/{u.database}"
        cmd = ["psql", conninfo, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql]
    proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    return [tuple(_norm(v) for v in line.split("|")) for line in proc.stdout.splitlines() if line]


def _norm(value: str) -> str:
    try:
        return repr(round(float(value), 6))
    except ValueError:
        return value


def test_docs_have_example_queries() -> None:
    assert len(QUERIES) >= 2


@pytest.mark.parametrize("index", range(len(QUERIES)))
def test_documented_query_runs_in_the_command_line_clients(seeded_url: str, index: int) -> None:
    rows = _client(seeded_url, QUERIES[index])
    if "empty until" not in QUERIES[index]:
        assert rows, "a documented example should return rows on the built-in catalog"
    _RESULTS.setdefault(index, {})[make_url(seeded_url).get_backend_name()] = rows
    if len(_RESULTS[index]) == 2:
        assert _RESULTS[index]["sqlite"] == _RESULTS[index]["postgresql"]


_RESULTS: dict[int, dict[str, list[tuple[str, ...]]]] = {}
