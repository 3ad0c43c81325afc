"""Benchmarks: one module per benchmark, each registering a Task (see base.py)."""

from __future__ import annotations

import importlib

from evaluator.tasks.base import TASKS, Task

# Modules that define tasks; a new benchmark is one file here plus its name in this list.
TASK_MODULES = (
    "gsm8k",
    "math",  # math (MATH-500) and hendrycks_math
    "pubmedqa",
    "medqa",
    "bioasq",
    "mediqa",
    "multiple_choice",  # mmlu and arc_challenge
    "humaneval",
    "mbpp",
    "bigcodebench",  # bigcodebench (complete) and bigcodebench_instruct
)


def load_all() -> dict[str, type[Task]]:
    for module in TASK_MODULES:
        importlib.import_module(f"evaluator.tasks.{module}")
    return TASKS


def get_task(name: str) -> Task:
    tasks = load_all()
    if name not in tasks:
        from catalog.db import CatalogError

        raise CatalogError(f"no evaluator task for dataset {name!r}; valid: {', '.join(sorted(tasks))}")
    return tasks[name]()
