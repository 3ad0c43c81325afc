"""Export a view or table to CSV, JSON or Parquet for tools that cannot connect to a database."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import MetaData, Table, inspect, select
from sqlalchemy.engine import Engine

from catalog.db import CatalogError, is_search_object

EXPORT_FORMATS = ("csv", "json", "parquet")
BATCH_ROWS = 10_000


def exportable(engine: Engine) -> list[str]:
    """Every view and table a user may export (Alembic's bookkeeping table excluded)."""
    insp = inspect(engine)
    names = set(insp.get_view_names()) | set(insp.get_table_names())
    return sorted(n for n in names - {"alembic_version"} if not is_search_object(n))


def export(engine: Engine, relation: str, fmt: str, out: Optional[Path]) -> tuple[Path, int]:
    """Write every row of ``relation`` to ``out`` (default ``<relation>.<fmt>``); returns (path, rows)."""
    if fmt not in EXPORT_FORMATS:
        raise CatalogError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    valid = exportable(engine)
    if relation not in valid:
        if not valid:
            raise CatalogError("the database has no catalog yet; run `catalog seed` first")
        raise CatalogError(f"unknown view or table {relation!r}; valid: {', '.join(valid)}")
    path = out or Path(f"{relation}.{fmt}")
    tmp = path.with_name(path.name + ".part")  # never leave a half-written file under the real name
    with engine.connect() as conn:
        # Reflecting the relation gives typed columns, so SQLite's 0/1 come back as booleans
        # and JSON text as lists: the file is the same whichever database wrote it.
        reflected = Table(relation, MetaData(), autoload_with=conn)
        result = conn.execution_options(stream_results=True).execute(select(reflected))
        columns = list(result.keys())
        batches = (result.fetchmany(BATCH_ROWS) for _ in iter(int, 1))
        try:
            rows = _WRITERS[fmt](tmp, columns, batches)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(path)
    return path, rows


def _until_empty(batches: Any) -> Any:
    for batch in batches:
        if not batch:
            return
        yield batch


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _write_csv(path: Path, columns: list[str], batches: Any) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for batch in _until_empty(batches):
            writer.writerows([[_plain(v) for v in row] for row in batch])
            count += len(batch)
    return count


def _write_json(path: Path, columns: list[str], batches: Any) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[")
        for batch in _until_empty(batches):
            for row in batch:
                fh.write(",\n" if count else "\n")
                json.dump(dict(zip(columns, (_plain(v) for v in row))), fh, default=str)
                count += 1
        fh.write("\n]\n")
    return count


def _write_parquet(path: Path, columns: list[str], batches: Any) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CatalogError("Parquet export needs pyarrow: pip install pyarrow") from None
    count = 0
    writer = None
    try:
        for batch in _until_empty(batches):
            table = pa.table({c: [_plain(row[i]) for row in batch] for i, c in enumerate(columns)})
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table.cast(writer.schema))
            count += len(batch)
        if writer is None:  # no rows: still write a valid file with the columns
            pq.write_table(pa.table({c: pa.array([], pa.string()) for c in columns}), str(path))
    finally:
        if writer is not None:
            writer.close()
    return count


_WRITERS = {"csv": _write_csv, "json": _write_json, "parquet": _write_parquet}
