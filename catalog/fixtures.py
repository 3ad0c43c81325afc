"""Read and validate YAML fixtures, then upsert them idempotently.

A fixture file is a YAML mapping whose keys are any of ``FIXTURE_KINDS`` (``licenses``,
``models``, ...), each a list of entries.  The built-in catalog is every ``*.yaml`` under
``seeds/``; a user's file in the same format adds to it (``catalog seed --fixtures``).

Validation happens in full before anything is written; the write is one transaction, so a
bad file leaves the database exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from sqlalchemy import JSON, Connection, Date, Table, and_, delete, select, text, tuple_
from sqlalchemy.engine import Engine

from catalog import schema
from catalog.db import CatalogError

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"
FIXTURE_KINDS = (
    "licenses",
    "size_buckets",
    "presets",
    "gpus",
    "datasets",
    "categories",
    "models",
    "published_results",
)


class FixtureError(CatalogError):
    """A fixture file is malformed; the message names the file, the entry and the field."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LicenseEntry(_Entry):
    id: str = Field(min_length=1)
    name: str
    family: Literal["permissive", "restricted-open", "non-commercial", "proprietary", "unknown"]
    commercial_use: bool
    url: Optional[str] = None


class SizeBucketEntry(_Entry):
    id: str = Field(min_length=1)
    label: str
    min_params_b: float = Field(ge=0)
    max_params_b: Optional[float] = None
    sort_order: int


class PresetEntry(_Entry):
    id: str = Field(min_length=1)
    gpu_memory_utilization: float = Field(gt=0, le=1)
    max_num_seqs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    swap_space_gb: float = Field(default=4.0, ge=0)
    cpu_offload_gb: float = Field(default=0.0, ge=0)
    description: str = ""


class GpuEntry(_Entry):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str
    architecture: str
    memory_gb: float = Field(gt=0, description="as marketed")
    memory_mib: int = Field(gt=0, description="total memory nvidia-smi reports")
    bf16: bool
    fp8: bool
    source: str = Field(min_length=1)
    memory_source: Optional[str] = None
    notes: Optional[str] = None


class GenerationSettings(_Entry):
    max_tokens: int = Field(gt=0)
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    stop: list[str] = []
    sample_limit: int = Field(gt=0)
    timeout_s: float = Field(gt=0)


class CategoryDatasets(_Entry):
    primary: list[str] = []
    optional: list[str] = []


class CategoryEntry(_Entry):
    id: str = Field(min_length=1)
    name: str
    description: str = ""
    status: Literal["operational", "planned"]
    phase: int = Field(ge=1)
    generation: GenerationSettings
    datasets: CategoryDatasets = CategoryDatasets()


class DatasetEntry(_Entry):
    id: str = Field(min_length=1)
    name: str
    hub_id: Optional[str] = None
    config: Optional[str] = None
    split: str
    task_type: str
    primary_metric: str
    license: Optional[str] = None
    size: Optional[int] = Field(default=None, ge=0)
    needs_data_file: bool = False
    description: str = ""
    source: Optional[str] = None


class ModelEntry(_Entry):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str
    hub_id: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    revision: Optional[str] = None
    family: str
    architecture: str
    kind: Literal["causal-lm", "encoder", "encoder-decoder", "vision-language"]
    params_b: float = Field(gt=0)
    active_params_b: Optional[float] = Field(default=None, gt=0)
    weights_gb: Optional[float] = Field(default=None, gt=0)
    native_context: int = Field(gt=0)
    max_context: int = Field(gt=0)
    rope_scaling: Optional[str] = None
    license_id: str
    license_name: Optional[str] = None
    quantization: Literal["none", "awq", "gptq", "fp8", "int8"] = "none"
    quantized_hub_id: Optional[str] = None
    gated: bool = False
    release_date: Optional[dt.date] = None
    trust_remote_code: bool = False
    dtype: Optional[str] = None
    chat_template: bool = False
    num_layers: Optional[int] = Field(default=None, gt=0)
    hidden_size: Optional[int] = Field(default=None, gt=0)
    num_attention_heads: Optional[int] = Field(default=None, gt=0)
    num_kv_heads: Optional[int] = Field(default=None, gt=0)
    head_dim: Optional[int] = Field(default=None, gt=0)
    vocab_size: Optional[int] = Field(default=None, gt=0)
    primary_category: str
    other_categories: list[str] = []
    subcategory: Optional[str] = None
    primary_use_cases: list[str] = []
    preset: str = "balanced"
    priority: Literal["high", "medium", "low"] = "medium"
    agent_optimized: bool = False
    agent_temperature: Optional[float] = Field(default=None, ge=0)
    max_function_calls_per_turn: Optional[int] = Field(default=None, ge=0)
    evaluation_batch_size: int = Field(default=8, gt=0)
    max_model_len: Optional[int] = Field(default=None, gt=0)
    gpu_memory_utilization: Optional[float] = Field(default=None, gt=0, le=1)
    sources: list[str] = Field(min_length=1)
    notes: Optional[str] = None

    @field_validator("max_context")
    @classmethod
    def _max_not_below_native(cls, value: int, info: Any) -> int:
        native = info.data.get("native_context")
        if native is not None and value < native:
            raise ValueError(f"max_context {value} is below native_context {native}")
        return value

    @field_validator("quantized_hub_id")
    @classmethod
    def _quantized_repo_needs_method(cls, value: Optional[str], info: Any) -> Optional[str]:
        if info.data.get("quantization", "none") != "none" and not value:
            raise ValueError("a quantized deployment needs quantized_hub_id (the repo of the quantized weights)")
        return value

    @field_validator("max_model_len")
    @classmethod
    def _serve_len_within_max(cls, value: Optional[int], info: Any) -> Optional[int]:
        maximum = info.data.get("max_context")
        if value is not None and maximum is not None and value > maximum:
            raise ValueError(f"max_model_len {value} exceeds max_context {maximum}")
        return value


class PublishedResultEntry(_Entry):
    model_id: str
    dataset_id: str
    metric: str
    value: float
    source: str = Field(min_length=1)
    note: Optional[str] = None


ENTRY_TYPES: dict[str, type[_Entry]] = {
    "licenses": LicenseEntry,
    "size_buckets": SizeBucketEntry,
    "presets": PresetEntry,
    "gpus": GpuEntry,
    "categories": CategoryEntry,
    "datasets": DatasetEntry,
    "models": ModelEntry,
    "published_results": PublishedResultEntry,
}


@dataclass(frozen=True)
class Located:
    """An entry and where it came from, for error messages."""

    entry: Any
    origin: str  # "seeds/models/x.yaml: models[3]"


@dataclass
class Fixtures:
    """All validated entries of one load, by kind, in file order."""

    entries: dict[str, list[Located]] = field(default_factory=lambda: {k: [] for k in FIXTURE_KINDS})

    def of(self, kind: str) -> list[Any]:
        return [loc.entry for loc in self.entries[kind]]

    def count(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.entries.items()}


# --------------------------------------------------------------------------- reading


def builtin_fixture_files() -> list[Path]:
    """The built-in catalog: every YAML file under seeds/, in a stable order."""
    return sorted(SEEDS_DIR.rglob("*.yaml"))


def _describe(kind: str, index: int, raw: Any) -> str:
    key = raw.get("id") if isinstance(raw, Mapping) else None
    if key is None and isinstance(raw, Mapping) and "model_id" in raw:
        key = f"{raw.get('model_id')}/{raw.get('dataset_id')}/{raw.get('metric')}"
    return f"{kind}[{index}]" + (f" (id={key})" if key else "")


def _format_validation_error(where: str, exc: ValidationError, skip: int = 0) -> str:
    """One line: the first error's field path (minus ``skip`` leading list indices) and message."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"][skip:]) or "(entry)"
    got = err.get("input")
    got_text = "" if err["type"] == "missing" or isinstance(got, Mapping) else f" (got {got!r})"
    more = f" [+{exc.error_count() - 1} more]" if exc.error_count() > 1 else ""
    return f"{where}: field '{loc}': {err['msg']}{got_text}{more}"


def parse_documents(documents: Iterable[tuple[str, Any]]) -> Fixtures:
    """Validate already-parsed fixture documents: ``(origin name, mapping)`` pairs."""
    fixtures = Fixtures()
    seen: dict[tuple[str, Any], str] = {}
    for name, doc in documents:
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise FixtureError(f"{name}: expected a mapping with keys {', '.join(FIXTURE_KINDS)}")
        for kind, items in doc.items():
            if kind not in ENTRY_TYPES:
                raise FixtureError(
                    f"{name}: unknown section {kind!r}; valid: {', '.join(FIXTURE_KINDS)}"
                )
            if not isinstance(items, list):
                raise FixtureError(f"{name}: section {kind!r} must be a list of entries")
            try:
                # One pydantic call per section: much faster than one per entry for big files.
                entries = _adapter(kind).validate_python(items)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                index = first["loc"][0] if first["loc"] and isinstance(first["loc"][0], int) else 0
                where = f"{name}: {_describe(kind, index, items[index])}"
                raise FixtureError(_format_validation_error(where, exc, skip=1)) from None
            for index, entry in enumerate(entries):
                key = (kind, _natural_key(kind, entry))
                if key in seen:
                    where = f"{name}: {_describe(kind, index, items[index])}"
                    raise FixtureError(f"{where}: duplicate of {seen[key]}")
                seen[key] = f"{name}: {kind}[{index}]"
                fixtures.entries[kind].append(Located(entry, f"{name}: {kind}[{index}] (id={key[1]})"))
    return fixtures


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _adapter(kind: str) -> TypeAdapter[Any]:
    """A validator for a whole section (a list of entries of one kind)."""
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(list[ENTRY_TYPES[kind]])  # type: ignore[index]
    return _ADAPTERS[kind]


def _natural_key(kind: str, entry: Any) -> Any:
    if kind == "published_results":
        return (entry.model_id, entry.dataset_id, entry.metric)
    return entry.id


def read_files(paths: Sequence[Union[str, Path]]) -> Fixtures:
    """Read and validate fixture files; raises FixtureError naming file, entry and field."""
    return parse_documents(_load_yaml(Path(p)) for p in paths)


def _load_yaml(path: Path) -> tuple[str, Any]:
    if not path.is_file():
        raise FixtureError(f"fixture file {str(path)!r} does not exist")
    try:
        with path.open(encoding="utf-8") as fh:
            return str(path), yaml.load(fh, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FixtureError(f"{path}:{where}: invalid YAML: {problem}") from None


def _loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --------------------------------------------------------------------------- rows


def _model_row(m: ModelEntry) -> dict[str, Any]:
    # __dict__ rather than model_dump(): the same values, several times faster at scale.
    row = dict(m.__dict__)
    del row["primary_category"], row["other_categories"]
    row["preset_id"] = row.pop("preset")
    return row


def _category_row(c: CategoryEntry) -> dict[str, Any]:
    row = c.model_dump(exclude={"generation", "datasets"})
    row.update(c.generation.model_dump())
    return row


def _rows(kind: str, entries: list[Any]) -> list[dict[str, Any]]:
    if kind == "models":
        return [_model_row(e) for e in entries]
    if kind == "categories":
        return [_category_row(e) for e in entries]
    return [dict(e.__dict__) for e in entries]


TABLES: dict[str, Table] = {
    "licenses": schema.License.__table__,  # type: ignore[attr-defined]
    "size_buckets": schema.SizeBucket.__table__,  # type: ignore[attr-defined]
    "presets": schema.Preset.__table__,  # type: ignore[attr-defined]
    "gpus": schema.Gpu.__table__,  # type: ignore[attr-defined]
    "categories": schema.Category.__table__,  # type: ignore[attr-defined]
    "datasets": schema.Dataset.__table__,  # type: ignore[attr-defined]
    "models": schema.Model.__table__,  # type: ignore[attr-defined]
    "published_results": schema.PublishedResult.__table__,  # type: ignore[attr-defined]
}
CATEGORY_MODEL: Table = schema.CategoryModel.__table__  # type: ignore[attr-defined]
CATEGORY_DATASET: Table = schema.CategoryDataset.__table__  # type: ignore[attr-defined]


@dataclass
class SeedReport:
    """What one seed did, per fixture kind: added / updated / unchanged."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, kind: str, added: int = 0, updated: int = 0, unchanged: int = 0) -> None:
        c = self.counts.setdefault(kind, {"added": 0, "updated": 0, "unchanged": 0})
        c["added"] += added
        c["updated"] += updated
        c["unchanged"] += unchanged

    @property
    def changed(self) -> bool:
        return any(c["added"] or c["updated"] for c in self.counts.values())

    def rows(self) -> list[dict[str, Any]]:
        return [{"fixture": k, **v} for k, v in self.counts.items()]


# --------------------------------------------------------------------------- checks


def _known_ids(conn: Connection, table: Table, loaded: Iterable[str]) -> set[str]:
    ids = set(loaded)
    ids.update(conn.execute(select(table.c.id)).scalars())
    return ids


def check_references(conn: Connection, fx: Fixtures) -> None:
    """Every reference in the load must resolve, in this load or in the database."""
    licenses = _known_ids(conn, TABLES["licenses"], (e.id for e in fx.of("licenses")))
    presets = _known_ids(conn, TABLES["presets"], (e.id for e in fx.of("presets")))
    categories = _known_ids(conn, TABLES["categories"], (e.id for e in fx.of("categories")))
    datasets = _known_ids(conn, TABLES["datasets"], (e.id for e in fx.of("datasets")))

    def need(value: str, valid: set[str], where: str, what: str) -> None:
        if value not in valid:
            raise FixtureError(
                f"{where}: field '{what}': unknown value {value!r}; valid: {', '.join(sorted(valid))}"
            )

    for loc in fx.entries["categories"]:
        for role in ("primary", "optional"):
            for ds in getattr(loc.entry.datasets, role):
                need(ds, datasets, loc.origin, f"datasets.{role}")
    model_ids = {e.id for e in fx.of("models")}
    hub_owner: dict[str, str] = {}
    for loc in fx.entries["models"]:
        m = loc.entry
        need(m.license_id, licenses, loc.origin, "license_id")
        need(m.preset, presets, loc.origin, "preset")
        need(m.primary_category, categories, loc.origin, "primary_category")
        for c in m.other_categories:
            need(c, categories, loc.origin, "other_categories")
        if m.primary_category in m.other_categories:
            raise FixtureError(f"{loc.origin}: field 'other_categories': repeats the primary category")
        deployment = f"{m.hub_id} ({m.quantization})"
        if deployment in hub_owner:
            raise FixtureError(
                f"{loc.origin}: field 'hub_id': {deployment} is also catalogued by {hub_owner[deployment]}"
            )
        hub_owner[deployment] = loc.origin
    if fx.entries["published_results"]:
        known_models = _known_ids(conn, TABLES["models"], model_ids)
        for loc in fx.entries["published_results"]:
            need(loc.entry.model_id, known_models, loc.origin, "model_id")
            need(loc.entry.dataset_id, datasets, loc.origin, "dataset_id")
    _check_buckets(conn, fx)


def _check_buckets(conn: Connection, fx: Fixtures) -> None:
    """Size buckets must tile [0, inf): sorted by min, each max is the next min."""
    table = TABLES["size_buckets"]
    buckets = {r.id: (r.min_params_b, r.max_params_b) for r in conn.execute(select(table))}
    buckets.update({e.id: (e.min_params_b, e.max_params_b) for e in fx.of("size_buckets")})
    if not buckets:
        return
    ordered = sorted(buckets.items(), key=lambda kv: kv[1][0])
    expected_min = 0.0
    for i, (bid, (lo, hi)) in enumerate(ordered):
        last = i == len(ordered) - 1
        if lo != expected_min:
            raise FixtureError(
                f"size_buckets: bucket {bid!r} starts at {lo} but the previous one ends at {expected_min}"
                " (buckets must be half-open ranges with no gap or overlap)"
            )
        if last and hi is not None:
            raise FixtureError(f"size_buckets: the last bucket {bid!r} must have max_params_b: null")
        if not last and (hi is None or hi <= lo):
            raise FixtureError(f"size_buckets: bucket {bid!r} needs max_params_b greater than {lo}")
        expected_min = hi if hi is not None else expected_min


# --------------------------------------------------------------------------- writing


def _chunks(items: list[Any], size: int = 5000) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(_normalise(old.get(k)) == _normalise(v) for k, v in new.items())


Keys = set[tuple[Any, ...]]
ANALYZE_AFTER_ROWS = 5000


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows at driver speed: COPY on PostgreSQL, the C executemany on SQLite.

    SQLAlchemy's executemany goes through psycopg's per-row pipeline, which imports only a
    few hundred models a second; going to the driver keeps `catalog seed` fast at hub scale.
    Values are converted here the way the column types would (JSON -> text, dates -> ISO).
    """
    if not rows:
        return
    cols = list(rows[0])
    # Only JSON (and, on SQLite, date) columns need converting; the rest pass through as is.
    fixes = [(i, json.dumps) for i, c in enumerate(cols) if isinstance(table.c[c].type, JSON)]
    if conn.dialect.name == "sqlite":
        fixes += [(i, dt.date.isoformat) for i, c in enumerate(cols) if isinstance(table.c[c].type, Date)]
    getter = itemgetter(*cols)
    if len(cols) == 1:
        data = [(getter(r),) for r in rows]
    elif not fixes:
        data = [getter(r) for r in rows]
    else:
        data = []
        for r in rows:
            values = list(getter(r))
            for i, fix in fixes:
                if values[i] is not None:
                    values[i] = fix(values[i])
            data.append(values)
    raw = conn.connection.driver_connection
    quote = conn.dialect.identifier_preparer.quote
    col_sql = ", ".join(quote(c) for c in cols)
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {quote(table.name)} ({col_sql}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in data:
                copy.write_row(row)
        if len(data) >= ANALYZE_AFTER_ROWS:
            # Fresh statistics, or the planner keeps treating a table that just grew by
            # 50,000 rows as tiny and the next load's key lookups fall back to seq scans.
            conn.exec_driver_sql(f"ANALYZE {quote(table.name)}")
    else:
        marks = ", ".join("?" for _ in cols)
        raw.executemany(f"INSERT INTO {quote(table.name)} ({col_sql}) VALUES ({marks})", data)  # type: ignore[union-attr]


def _upsert(
    conn: Connection, table: Table, key_cols: Sequence[str], rows: list[dict[str, Any]]
) -> tuple[Keys, Keys, Keys]:
    """Insert new rows, update changed ones; return the keys (added, updated, unchanged)."""
    if not rows:
        return set(), set(), set()
    cols = [table.c[k] for k in key_cols]
    existing: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for chunk in _chunks(rows, 500):
        keys = [tuple(r[k] for k in key_cols) for r in chunk]
        cond = cols[0].in_([k[0] for k in keys]) if len(cols) == 1 else tuple_(*cols).in_(keys)
        for r in conn.execute(select(table).where(cond)).mappings():
            existing[tuple(r[k] for k in key_cols)] = r
    to_insert: list[dict[str, Any]] = []
    to_update: list[dict[str, Any]] = []
    unchanged: Keys = set()
    for row in rows:
        key = tuple(row[k] for k in key_cols)
        old = existing.get(key)
        if old is None:
            to_insert.append(row)
        elif _same(old, row):
            unchanged.add(key)
        else:
            to_update.append(row)
    _bulk_insert(conn, table, to_insert)
    if to_update:
        from sqlalchemy import bindparam

        value_cols = [c for c in to_update[0] if c not in key_cols]
        stmt = (
            table.update()
            .where(and_(*[table.c[k] == bindparam(f"k_{k}") for k in key_cols]))
            .values({c: bindparam(f"v_{c}") for c in value_cols})
        )
        params = [
            {**{f"k_{k}": r[k] for k in key_cols}, **{f"v_{c}": r[c] for c in value_cols}} for r in to_update
        ]
        for chunk in _chunks(params):
            conn.execute(stmt, chunk)
    added = {tuple(r[k] for k in key_cols) for r in to_insert}
    updated = {tuple(r[k] for k in key_cols) for r in to_update}
    return added, updated, unchanged


def _sync_links(
    conn: Connection,
    table: Table,
    owner_col: str,
    owners: list[str],
    wanted: list[dict[str, Any]],
    new_owners: set[str],
) -> set[str]:
    """Make the link rows of ``owners`` exactly ``wanted``; return the owners whose links changed.

    ``new_owners`` were inserted by this load, so they cannot have links yet: no need to look.
    """
    if not owners:
        return set()
    current: dict[str, set[tuple[Any, ...]]] = {o: set() for o in owners}
    cols = [c.name for c in table.columns]
    for chunk in _chunks([o for o in owners if o not in new_owners], 500):
        for r in conn.execute(select(table).where(table.c[owner_col].in_(chunk))).mappings():
            current[r[owner_col]].add(tuple(_normalise(r[c]) for c in cols))
    desired: dict[str, set[tuple[Any, ...]]] = {o: set() for o in owners}
    for w in wanted:
        desired[w[owner_col]].add(tuple(_normalise(w[c]) for c in cols))
    changed = {o for o in owners if current[o] != desired[o]}
    if changed:
        stale = sorted(changed - new_owners)
        for chunk in _chunks(stale, 500):
            conn.execute(delete(table).where(table.c[owner_col].in_(chunk)))
        _bulk_insert(conn, table, [w for w in wanted if w[owner_col] in changed])
    return changed


def write(conn: Connection, fx: Fixtures) -> SeedReport:
    """Upsert a validated load inside the caller's transaction."""
    check_references(conn, fx)
    report = SeedReport()
    for kind in FIXTURE_KINDS:
        entries = fx.of(kind)
        if not entries:
            continue
        if kind == "published_results":
            added, updated, same = _upsert(
                conn, TABLES[kind], ("model_id", "dataset_id", "metric"), _rows(kind, entries)
            )
            report.add(kind, len(added), len(updated), len(same))
            continue
        added, updated, same = _upsert(conn, TABLES[kind], ("id",), _rows(kind, entries))
        relinked: set[str] = set()
        if kind == "categories":
            links = [
                {"category_id": c.id, "dataset_id": d, "role": role}
                for c in entries
                for role in ("primary", "optional")
                for d in getattr(c.datasets, role)
            ]
            relinked = _sync_links(
                conn, CATEGORY_DATASET, "category_id", [c.id for c in entries], links, {k[0] for k in added}
            )
        elif kind == "models":
            links = [
                {"category_id": c, "model_id": m.id, "is_primary": c == m.primary_category}
                for m in entries
                for c in [m.primary_category, *m.other_categories]
            ]
            relinked = _sync_links(
                conn, CATEGORY_MODEL, "model_id", [m.id for m in entries], links, {k[0] for k in added}
            )
        # An entry whose own row was unchanged but whose links changed counts as updated.
        moved = {(key,) for key in relinked} & same
        report.add(kind, len(added), len(updated) + len(moved), len(same) - len(moved))
    return report


def _lock_for_writing(conn: Connection) -> None:
    """Serialise concurrent seeders: PostgreSQL advisory lock (SQLite uses BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7226010)"))


def seed(
    engine: Engine, fixtures: Fixtures, *, dry_run: bool = False
) -> SeedReport:
    """Write ``fixtures`` in one transaction (rolled back when ``dry_run``)."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            _lock_for_writing(conn)
            report = write(conn, fixtures)
        except BaseException:
            tx.rollback()
            raise
        if dry_run:
            tx.rollback()
        else:
            tx.commit()
    return report
