"""Load a task's documents through `datasets`: from the hub, or from local files in the same schema.

Local files (``--data-file`` for the evaluated split, ``--data-dir`` for a folder holding one
file per split, e.g. ``test.jsonl`` and ``train.jsonl``) are read with the `datasets` file
builders (json, csv, parquet), so a local file must use the upstream field names.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from catalog.db import CatalogError
from evaluator.tasks.base import Doc, Task

BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class DataSource:
    data_file: Optional[Path] = None
    data_dir: Optional[Path] = None

    def describe(self, task: Task) -> dict[str, Any]:
        """What went into the run's fingerprint: the hub coordinates or the local file's hash."""
        spec = task.load_spec
        if self.data_file or self.data_dir:
            path = self.data_file or self.file_for(task, spec.split)
            return {"local": str(path), "sha256": _sha256(path)}
        return {"hub_id": spec.hub_id, "config": spec.config, "configs": list(spec.configs), "split": spec.split}

    def file_for(self, task: Task, split: str) -> Path:
        """The file of ``split``: --data-file for the evaluated split, else <data-dir>/<split>.*"""
        if self.data_file is not None and split == task.load_spec.split:
            return self.data_file
        if self.data_dir is not None:
            for ext in BUILDERS:
                candidate = self.data_dir / f"{split}{ext}"
                if candidate.exists():
                    return candidate
            raise CatalogError(
                f"no file for split {split!r} of {task.name} in {self.data_dir} "
                f"(expected {split}.jsonl, {split}.json, {split}.csv or {split}.parquet)"
            )
        raise CatalogError(
            f"{task.name} needs its {split!r} split (for few-shot examples) too: pass --data-dir with a "
            f"{split}.jsonl beside the evaluated split"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_loadable(task: Task, source: DataSource, needs_data_file: bool) -> None:
    """Refuse early, before anything heavy is imported, when the data cannot be had."""
    for path in (source.data_file, source.data_dir):
        if path is not None and not path.exists():
            raise CatalogError(f"data path {str(path)!r} does not exist")
    if source.data_file and source.data_file.suffix not in BUILDERS:
        raise CatalogError(
            f"cannot read {str(source.data_file)!r}: unknown file type; valid: {', '.join(BUILDERS)}"
        )
    local = source.data_file is not None or source.data_dir is not None
    if local:
        splits = [task.load_spec.split] + ([task.load_spec.fewshot_split] if task.num_fewshot and
                                           task.load_spec.fewshot_split else [])  # fmt: skip
        for split in splits:
            source.file_for(task, split)
        return
    if needs_data_file or task.load_spec.hub_id is None:
        raise CatalogError(
            f"{task.name} cannot be downloaded (it needs registration); pass --data-file with the file in its "
            "official format"
        )
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise CatalogError(
            f"{task.name} would be downloaded from the hub ({task.load_spec.hub_id}) but the hub is offline "
            "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE); pass --data-file or --data-dir with local files"
        )


def _load_split(task: Task, source: DataSource, split: str) -> list[dict[str, Any]]:
    import datasets

    datasets.disable_progress_bars()
    spec = task.load_spec
    if source.data_file is not None or source.data_dir is not None:
        path = source.file_for(task, split)
        if spec.json_field and path.suffix == ".json":
            # Records under a top-level key whose fields change type between records (BioASQ's
            # exact_answer is a string for yes/no questions and nested lists for factoid ones):
            # Arrow cannot hold that column, so read the JSON as it is and let the task filter.
            return _json_records(path, spec.json_field)
        ds = datasets.load_dataset(BUILDERS[path.suffix], data_files=str(path), split="train")
        return ds.to_list()  # one Arrow-to-Python conversion: ~20x faster than iterating rows
    configs = spec.configs or (spec.config,)
    rows: list[dict[str, Any]] = []
    for config in configs:
        ds = datasets.load_dataset(spec.hub_id, config, split=split)
        rows.extend(ds.to_list())
    return rows


def _json_records(path: Path, key: str) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as fh:
            records = json.load(fh)[key]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CatalogError(f"{path}: expected a JSON object with a {key!r} list ({exc})") from None
    if not isinstance(records, list):
        raise CatalogError(f"{path}: {key!r} must be a list of records")
    return records


def load_docs(task: Task, source: DataSource, limit: Optional[int]) -> list[Doc]:
    """The first ``limit`` documents of the evaluated split (all when None), in dataset order."""
    if task.num_fewshot and task.load_spec.fewshot_split:
        task.set_fewshot(task.prepare(_load_split(task, source, task.load_spec.fewshot_split)))
    rows = task.prepare(_load_split(task, source, task.load_spec.split))
    docs = [Doc(task.doc_id(row, i), row) for i, row in enumerate(rows)]
    seen: set[str] = set()
    for d in docs:
        if d.doc_id in seen:
            raise CatalogError(f"{task.name}: doc_id {d.doc_id!r} appears twice in the data")
        seen.add(d.doc_id)
    return docs if limit is None else docs[:limit]
