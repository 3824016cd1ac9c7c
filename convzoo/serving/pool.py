"""The served models: each loaded once, verified against its sha256, warmed up, and given a batcher.

A model that cannot be served (file missing, corrupt, sha256 mismatch, not loadable) is kept with
the reason, reported not ready, and never takes the others down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convzoo import tasks
from convzoo.errors import ConvzooError, IntegrityError
from convzoo.registry import Store, StoredModel, validate_name
from convzoo.runtime import load_model, plan_tiles, run_tiled, shrinking_run_options
from convzoo.serving.batching import Batcher
from convzoo.serving.memory import measure_peak
from convzoo.serving.tensors import DATATYPES, ORT_TYPES, ProtocolError, TensorSpec

log = logging.getLogger("convzoo.serving")

CALIBRATION_SIDE = 256  # where a model takes any size, its memory is measured at this side and scaled
SAFETY = 1.25  # on the measured peak: allocator rounding and what else the process does meanwhile
MIN_BYTES_PER_VALUE = 16  # at least the input and output copies
FALLBACK_BYTES_PER_VALUE = 2048  # where the peak cannot be measured (off Linux): generous, so safe
SHRINK_ABOVE_BYTES = 64 * 1024 * 1024
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/'\"():;,]+/)*[^\s/'\"():;,]+")
THIN_SIDE, THIN_LENGTH = 16, 4096  # a thin calibration input: where the net's own padding weighs most
JSON_BYTES_PER_VALUE = 24  # an output value written as JSON text ("-0.123456789," and the buffers around it)
BINARY_BYTES_PER_VALUE = 8  # as raw bytes, and their copy into the body


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
    tile: int = 512  # segmentation inputs with more pixels than tile x tile run tile by tile
    bytes_per_value: float = float(FALLBACK_BYTES_PER_VALUE)  # a run's peak memory per input value, measured
    outputs_per_value: float = 1.0  # output values per input value, measured
    max_run_pixels: int = 2 * 2048 * 2048  # pixels a tiled run may cover, its tiles together
    heavy: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))  # image routes, one at a time

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def task(self) -> str | None:
        if self.model is not None:
            return self.model.task
        return self.stored.task if self.stored is not None else None

    @property
    def min_side(self) -> int:
        return tasks.get(self.task).min_side if self.task else 1

    def tiled(self, shape: Sequence[int]) -> bool:
        """Whether an input of ``shape`` runs tile by tile (a task that tiles, larger than one tile)."""
        return (self.task is not None and tasks.get(self.task).tiled and len(self.inputs) == 1 and len(shape) == 4
                and shape[2] * shape[3] > self.tile * self.tile)

    def cost(self, shapes: Sequence[Sequence[int]], *, tiled: bool | None = None,
             encode_bytes_per_value: float = BINARY_BYTES_PER_VALUE) -> int:
        """Bytes a run on inputs of ``shapes`` may take at its peak, known before it runs, from the shape it
        really runs on: the measured activations per input value (the worst of a square and a thin input,
        so padding inside the net is counted), or for a tiled run one tile's activations plus the padded
        arrays of its plan (``runtime.TilePlan``); then the outputs as they will be encoded. A tiled run on
        more than ``max_run_pixels`` (a thin input is padded to whole tiles) is refused with a 413."""
        shape = shapes[0]
        if tiled if tiled is not None else self.tiled(shape):
            batch, channels, height, width = shape
            plan = plan_tiles(self.model, channels, height, width, self.tile)
            if plan.run_pixels > self.max_run_pixels:
                raise ProtocolError(413, f"an input of {height}x{width} runs as {plan.tiles:,} tiles of "
                                         f"{plan.tile}x{plan.tile} = {plan.run_pixels:,} pixels for {self.name!r}, "
                                         f"more than this server's limit of {self.max_run_pixels:,}; crop it "
                                         "closer to a square or send a smaller one")
            outputs = batch * plan.classes * height * width
            return int(self.bytes_per_value * channels * plan.tile * plan.tile + plan.array_bytes(batch=1)
                       + 4 * (batch - 1) * outputs + encode_bytes_per_value * outputs)
        values = sum(math.prod(shape) for shape in shapes)
        return int(values * (self.bytes_per_value + self.outputs_per_value * encode_bytes_per_value))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output for a feed dict; what the batcher calls, in its worker thread. Large segmentation
        inputs run overlap-tiled, so their memory is one tile's whatever the input's size; a run far
        above the usual hands its arena memory back afterwards."""
        x = next(iter(feeds.values()))
        if self.tiled(x.shape):
            out = np.stack([run_tiled(self.model, sample, tile=self.tile, batch=1, shrink_arena=True)
                            for sample in x.astype(np.float32)])
            return {self.outputs[0].name: out}
        shrink = self.cost([a.shape for a in feeds.values()]) > SHRINK_ABOVE_BYTES
        values = self.model.session.run(None, dict(feeds), shrinking_run_options() if shrink else None)
        return {spec.name: value for spec, value in zip(self.outputs, values)}


def store_names(store: Store) -> list[str]:
    """Every model folder in the store, first root winning; a broken one is listed too, to be reported."""
    return [model.name for model in store.scan()]


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, ORT_TYPES.get(arg.type, arg.type), shape)


def thin_feeds(served: Served) -> list[dict[str, np.ndarray]]:
    """Zero inputs of THIN_SIDE x THIN_LENGTH and THIN_LENGTH x THIN_SIDE, where the model's spatial size is
    free (none where it is fixed)."""
    spec = served.inputs[0] if len(served.inputs) == 1 else None
    if spec is None or len(spec.shape) != 4 or spec.shape[2] != -1 or spec.shape[3] != -1:
        return []
    side = max(THIN_SIDE, served.min_side, -(-THIN_SIDE // served.size_multiple) * served.size_multiple)
    channels = spec.shape[1] if spec.shape[1] > 0 else 1
    dtype = DATATYPES[spec.datatype]
    return [{spec.name: np.zeros((1, channels, h, w), dtype)} for h, w in ((side, THIN_LENGTH), (THIN_LENGTH, side))]


def warmup_feeds(served: Served, side: int = 64) -> dict[str, np.ndarray]:
    """One zero input at the model's own size (or ``side`` where it takes any size, rounded to its multiple)."""
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
                dims.append(-(-side // served.size_multiple) * served.size_multiple)
        feeds[spec.name] = np.zeros(dims, DATATYPES[spec.datatype])
    return feeds


class Pool:
    """The models this process serves, by name."""

    def __init__(self, store: Store, names: Sequence[str] | None = None, *, threads: int | None = None,
                 spin: bool = False, max_batch: int = 32, batch_delay_ms: float = 2.0,
                 observe: Callable[..., None] | None = None, tile: int = 512,
                 max_run_pixels: int = 2 * 2048 * 2048) -> None:
        self.store = store
        self.tile = tile
        self.max_run_pixels = max_run_pixels
        self.threads = threads
        self.spin = spin
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
            model = load_model(served.name, self.store, threads=self.threads, spin=self.spin)  # checks the sha256 first
            served.model = model
            served.inputs = [_spec(arg) for arg in model.session.get_inputs()]
            served.outputs = [_spec(arg) for arg in model.session.get_outputs()]
            served.size_multiple = model.meta.size_multiple
            served.tile, served.max_run_pixels = self.tile, self.max_run_pixels
            self._calibrate(served)
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

    @staticmethod
    def _calibrate(served: Served) -> None:
        """Warm the model up with its first run, at CALIBRATION_SIDE where it takes any size, and measure
        that run's peak memory: the figure every later request's budget is computed from. Where the model
        takes any size, thin inputs (16 x 4096 and 4096 x 16) are measured too, and the worst is kept: a
        net's own padding costs most there. Segmentation models also learn their tiling (a probe run)."""
        def peak_per_value(feeds: dict[str, np.ndarray]) -> float | None:
            peak = measure_peak(lambda: served.model.session.run(None, feeds, shrinking_run_options()))
            return None if peak is None else peak / sum(array.size for array in feeds.values())

        measured = [peak_per_value(warmup_feeds(served, CALIBRATION_SIDE))]
        for feeds in thin_feeds(served):
            try:
                measured.append(peak_per_value(feeds))
            except Exception:  # noqa: BLE001 -- a thin input this net cannot take is refused at run time too
                pass
        known = [value for value in measured if value is not None]
        if known:
            served.bytes_per_value = max(MIN_BYTES_PER_VALUE, SAFETY * max(known))
        feeds = warmup_feeds(served)
        outputs = served.run(feeds)
        served.outputs_per_value = sum(a.size for a in outputs.values()) / sum(a.size for a in feeds.values())
        if served.task is not None and tasks.get(served.task).tiled and len(served.inputs) == 1:
            plan_tiles(served.model, served.inputs[0].shape[1] if served.inputs[0].shape[1] > 0 else 1,
                       served.tile, served.tile, served.tile)

    def public(self, text: str) -> str:
        """``text`` without this server's paths: store files named from the store's root, any other
        absolute path by its last part. Answers and the catalogue use it; the log keeps the full text."""
        roots = {str(root) for root in self.store.roots} | {str(Path(root).resolve()) for root in self.store.roots}
        for root in sorted(roots, key=len, reverse=True):
            text = text.replace(root.rstrip("/") + "/", "")
        return ABSOLUTE_PATH.sub(lambda match: Path(match.group()).name, text)

    def _fail(self, served: Served, reason: str) -> None:
        served.state, served.reason = "failed", self.public(reason)
        log.error(json.dumps({"event": "model_failed", "model": served.name, "reason": reason}))
        if self.on_state:
            self.on_state(served)

    async def close(self) -> None:
        for served in self:
            if served.batcher is not None:
                await served.batcher.close()
