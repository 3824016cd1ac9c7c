"""The served models: each loaded once, verified against its sha256, warmed up, and given a batcher.

A model that cannot be served (file missing, corrupt, sha256 mismatch, not loadable) is kept with
the reason, reported not ready, and never takes the others down.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convzoo.errors import ConvzooError, IntegrityError
from convzoo.registry import MANIFEST_FILE, Store, StoredModel, validate_name
from convzoo.types import NAME_PATTERN
from convzoo.serving.batching import Batcher
from convzoo.serving.tensors import DATATYPES, ORT_TYPES, TensorSpec
from convzoo.runtime import load_model

log = logging.getLogger("convzoo.serving")


@dataclass
class Served:
    name: str
    stored: StoredModel | None = None
    state: str = "loading"  # loading | ready | failed
    reason: str = "loading: verifying the sha256, building the session and warming up"
    model: Any = None  # convzoo.runtime.OnnxModel once loaded
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    batcher: Batcher | None = None
    size_multiple: int = 1
    load_seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def task(self) -> str | None:
        if self.model is not None:
            return self.model.task
        return self.stored.task if self.stored is not None else None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output for a feed dict; what the batcher calls, in its worker thread."""
        session = self.model.session
        values = session.run(None, feeds)
        return {spec.name: value for spec, value in zip(self.outputs, values)}


def store_names(store: Store) -> list[str]:
    """Every model folder in the store, first root winning; a broken manifest is reported, not fatal."""
    seen: list[str] = []
    for root in store.roots:
        if not Path(root).is_dir():
            continue
        for folder in sorted(Path(root).iterdir()):
            if (NAME_PATTERN.match(folder.name) and folder.name not in seen
                    and (folder / MANIFEST_FILE).is_file()):
                seen.append(folder.name)
    return seen


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, ORT_TYPES.get(arg.type, arg.type), shape)


def warmup_feeds(served: Served) -> dict[str, np.ndarray]:
    """One zero input at the model's own size (or 64 where it takes any size, rounded to its multiple)."""
    preprocess = served.model.preprocess_spec
    feeds = {}
    for spec in served.inputs:
        dims = []
        for i, d in enumerate(spec.shape):
            if d != -1:
                dims.append(d)
            elif i == 0:
                dims.append(1)
            elif preprocess.size is not None and len(spec.shape) == 4 and i in (2, 3):
                dims.append(preprocess.size[i - 2])
            else:
                dims.append(max(64, served.size_multiple))
        feeds[spec.name] = np.zeros(dims, DATATYPES[spec.datatype])
    return feeds


class Pool:
    """The models this process serves, by name."""

    def __init__(self, store: Store, names: Sequence[str] | None = None, *, threads: int | None = None,
                 max_batch: int = 32, batch_delay_ms: float = 2.0,
                 observe: Callable[..., None] | None = None) -> None:
        self.store = store
        self.threads = threads
        self.max_batch = max_batch
        self.delay_s = batch_delay_ms / 1000
        self._observe = observe
        if names:
            for name in names:
                validate_name(name)
                try:
                    store.get(name)  # a model the operator named that is not in the store is their mistake: say so now
                except IntegrityError:
                    pass  # an unreadable manifest is the model's problem: reported not ready, the others serve
        chosen = list(dict.fromkeys(names)) if names else store_names(store)
        if not chosen:
            raise ConvzooError(f"the store ({', '.join(map(str, store.roots))}) holds no models; export one with "
                               "`convzoo export NAME` or point --store at a store")
        self.models: dict[str, Served] = {name: Served(name) for name in chosen}
        self.loaded = threading.Event()
        self.on_state: Callable[[Served], None] | None = None

    def __iter__(self):
        return iter(self.models.values())

    def get(self, name: str) -> Served | None:
        return self.models.get(name)

    @property
    def ready(self) -> bool:
        return self.loaded.is_set() and all(served.ready for served in self)

    def not_ready_reasons(self) -> dict[str, str]:
        return {served.name: served.reason for served in self if not served.ready}

    def load_all(self) -> None:
        try:
            for served in self:
                self._load(served)
        finally:
            self.loaded.set()

    def _load(self, served: Served) -> None:
        start = time.perf_counter()
        try:
            served.stored = self.store.get(served.name)
            model = load_model(served.name, self.store, threads=self.threads)  # checks the sha256 first
            served.model = model
            served.inputs = [_spec(arg) for arg in model.session.get_inputs()]
            served.outputs = [_spec(arg) for arg in model.session.get_outputs()]
            served.size_multiple = int(json.loads(model.metadata.get("convzoo.size_multiple", "1")))
            served.run(warmup_feeds(served))
        except ConvzooError as e:
            self._fail(served, str(e))
            return
        except Exception as e:  # noqa: BLE001 -- a broken model is reported, the others are served
            self._fail(served, f"{type(e).__name__}: {e}")
            return
        served.batcher = Batcher(served.name, served.run, max_batch=self.max_batch, delay_s=self.delay_s,
                                 observe=self._observe)
        served.load_seconds = time.perf_counter() - start
        served.state, served.reason = "ready", "ready"
        log.info(json.dumps({"event": "model_ready", "model": served.name, "seconds": round(served.load_seconds, 3),
                             "providers": served.model.session.get_providers()}))
        if self.on_state:
            self.on_state(served)

    def _fail(self, served: Served, reason: str) -> None:
        served.state, served.reason = "failed", reason
        log.error(json.dumps({"event": "model_failed", "model": served.name, "reason": reason}))
        if self.on_state:
            self.on_state(served)

    async def close(self) -> None:
        for served in self:
            if served.batcher is not None:
                await served.batcher.close()
