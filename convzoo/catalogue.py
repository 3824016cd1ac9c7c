"""The catalogue: one row per model, shared by `convzoo list`, the app's Models tab and `/v1/models`, with
the formatters they all show (sizes, counts, the headline metric).

A row joins the registry's entry with what the store holds: a whole model, a broken folder with its
reason, or nothing yet. Models a user exported that the registry does not name get rows too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convzoo import registry, tasks
from convzoo.errors import UnknownModelError
from convzoo.registry import BrokenModel, Store, StoredModel
from convzoo.types import ModelEntry

# the metric a row shows, in order of preference: what each task's papers report
HEADLINE_METRICS = tuple((m.key, m.label) for task in tasks.TASKS.values() for m in task.metrics)  # each task's, in order
COLUMNS = ("name", "task", "dataset", "params", "MACs", "metric", "ONNX size", "sha256", "in store")


def human_size(n: int | None) -> str:
    """Bytes as people read them: ``247.2 KiB``, ``5.71 MiB``."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.2f} MiB"


def count(n: int | None) -> str:
    """Parameters or multiply-adds: ``61.71K``, ``1.49M``."""
    if not isinstance(n, int) or isinstance(n, bool):
        return "-"
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= divisor:
            return f"{n / divisor:.2f}{suffix}"
    return str(n)


def headline_metric(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """(what, value) of the metric a model is judged by, or None when it was never evaluated."""
    for key, label in HEADLINE_METRICS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return label, float(value)
    return None


def metric_text(metrics: dict[str, Any]) -> str:
    headline = headline_metric(metrics)
    if headline is None:
        return "-"
    label, value = headline
    return f"{value:.4f}" if label == "accuracy" else f"{label} {value:.4f}"


@dataclass(frozen=True)
class CatalogueRow:
    name: str
    task: str
    dataset: str
    params: int | None
    macs: int | None
    state: str  # stored | broken | not in store
    metrics: dict[str, Any]
    size_bytes: int | None
    sha256: str | None
    reason: str | None = None  # why a broken folder is broken

    @property
    def stored(self) -> bool:
        return self.state == "stored"

    def cells(self) -> list[str]:
        """The row as the CLI and the Models tab show it, in ``COLUMNS`` order."""
        return [self.name, self.task, self.dataset, count(self.params), count(self.macs), metric_text(self.metrics),
                human_size(self.size_bytes), self.sha256[:12] if self.sha256 else "-",
                {"stored": "yes", "broken": "broken", "not in store": "no"}[self.state]]

    def to_json(self) -> dict[str, Any]:
        headline = headline_metric(self.metrics)
        out = {"name": self.name, "task": self.task, "dataset": self.dataset, "params": self.params,
               "macs": self.macs, "in_store": self.state, "metrics": self.metrics,
               "headline": {"metric": headline[0], "value": headline[1]} if headline else None,
               "size_bytes": self.size_bytes, "sha256": self.sha256}
        if self.reason:
            out["reason"] = self.reason
        return out


def row(name: str, found: StoredModel | BrokenModel | None) -> CatalogueRow:
    """The row of ``name``: the stored manifest's copy of the entry when there is one, else the registry's
    (whose measured parameters and MACs win over an older manifest's)."""
    try:
        known: ModelEntry | None = registry.get(name)
    except UnknownModelError:
        known = None
    if isinstance(found, StoredModel):
        manifest, entry = found.manifest, found.entry
        params = (known and known.params) or entry.params or manifest.get("params")
        macs = (known and known.macs) or entry.macs or manifest.get("macs")
        return CatalogueRow(name, entry.task, entry.dataset, params, macs, "stored", dict(found.metrics),
                            manifest.get("size_bytes"), found.sha256)
    state, reason = ("broken", found.reason) if isinstance(found, BrokenModel) else ("not in store", None)
    return CatalogueRow(name, known.task if known else "-", known.dataset if known else "-",
                        known.params if known else None, known.macs if known else None, state, {}, None, None, reason)


def rows(store: Store, task: str | None = None) -> list[CatalogueRow]:
    """One row per registry entry and per folder in the store the registry does not name, stored ones first."""
    found = {model.name: model for model in store.scan()}
    names = [*registry.names(), *(name for name in found if name not in registry.names())]
    table = [row(name, found.get(name)) for name in names]
    table = [r for r in table if task is None or r.task == task]
    return sorted(table, key=lambda r: not r.stored)
