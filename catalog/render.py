"""Rows -> text: a tabulate table, markdown, CSV or JSON. No database access here."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from catalog.db import CatalogError
from catalog.vocab import OUTPUT_FORMATS


def check_format(fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise CatalogError(f"unknown format {fmt!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    return fmt


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return value


def render(
    rows: Sequence[Mapping[str, Any]],
    fmt: str = "table",
    columns: Optional[Sequence[str]] = None,
) -> str:
    """Render ``rows``; ``columns`` fixes the order (and the header when there are no rows)."""
    check_format(fmt)
    cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in cols} for r in rows], indent=2, default=_json_default)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else _cell(r.get(c)) for c in cols])
        return buf.getvalue().rstrip("\n")
    from tabulate import tabulate

    table = [[_cell(r.get(c)) for c in cols] for r in rows]
    return tabulate(table, headers=cols, tablefmt="github" if fmt == "markdown" else "simple",
                    disable_numparse=False)  # fmt: skip


def render_pairs(pairs: Mapping[str, Any], fmt: str = "table") -> str:
    """A key/value listing (one model's facts)."""
    rows = [{"field": k, "value": v} for k, v in pairs.items()]
    if fmt == "json":
        return json.dumps(dict(pairs), indent=2, default=_json_default)
    return render(rows, fmt, ["field", "value"])
