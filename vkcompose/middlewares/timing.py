"""Per-middleware timing for benchmarks: self time of every layer and of the backend.

:func:`instrument` rebuilds a pipeline with each middleware wrapped by a :class:`Timed` layer
and a ``backend`` layer in front of the backend call. Each records into a
:class:`TimingRecorder`, per ``(layer, op kind)``: how many calls, their total time and their
*self* time — time inside the layer minus time spent in its ``call_next`` — so the self times
of all layers add up to the pipeline's total and show where an op's time goes. Time spent
awaiting inside a layer (a retry's sleep, a rate limiter's wait) is that layer's self time.

The cost is two ``perf_counter`` reads and one small closure per layer per op; the original
pipeline is left untouched.

>>> import anyio
>>> from vkcompose.ops import ListPods
>>> from vkcompose.pipeline import compose
>>> class Backend:
...     async def list_pods(self):
...         return []
>>> async def passthrough(op, call_next):
...     return await call_next(op)
>>> recorder = TimingRecorder()
>>> anyio.run(instrument(compose(passthrough, backend=Backend()), recorder), ListPods())
[]
>>> [(t.layer, t.kind, t.count) for t in recorder.stats()]
[('passthrough', 'pods.list', 1), ('backend', 'pods.list', 1)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from vkcompose.ops import Op
from vkcompose.pipeline import Handler, Middleware, Pipeline, compose

BACKEND = "backend"
"""Layer name under which the backend's own time is recorded."""


@attrs.frozen
class LayerTiming:
    """Aggregated timings of one layer for one op kind (``kind="*"``: all kinds)."""

    layer: str
    kind: str
    count: int
    total: float
    self_time: float

    @property
    def mean_self(self) -> float:
        """Mean self time per call in seconds."""
        return self.self_time / self.count if self.count else 0.0


class TimingRecorder:
    """Aggregates ``(layer, kind) -> count, total, self`` in seconds. Cheap to update.

    Each instrumented layer writes into its own per-kind accumulators (:meth:`accumulator`);
    :meth:`record` is the general entry point for anything else that wants to report.
    """

    __slots__ = ("_layers",)

    def __init__(self) -> None:
        self._layers: dict[str, dict[str, list[float]]] = {}

    def declare(self, layers: Sequence[str]) -> None:
        """Fix the display order of layers (outermost first)."""
        for layer in layers:
            self._layers.setdefault(layer, {})

    def accumulator(self, layer: str) -> dict[str, list[float]]:
        """The live ``kind -> [count, total, self]`` table of ``layer``."""
        return self._layers.setdefault(layer, {})

    def record(self, layer: str, kind: str, total: float, self_time: float) -> None:
        """Add one call of ``layer`` for an op of ``kind``."""
        per_kind = self._layers.setdefault(layer, {})
        entry = per_kind.get(kind)
        if entry is None:
            entry = per_kind[kind] = [0, 0.0, 0.0]
        entry[0] += 1
        entry[1] += total
        entry[2] += self_time

    def reset(self) -> None:
        """Forget everything recorded (layers stay declared)."""
        for per_kind in self._layers.values():
            per_kind.clear()

    def stats(self) -> list[LayerTiming]:
        """Per ``(layer, kind)``, layers in pipeline order, kinds sorted."""
        return [
            LayerTiming(layer, kind, int(count), total, self_time)
            for layer, per_kind in self._layers.items()
            for kind, (count, total, self_time) in sorted(per_kind.items())
        ]

    def by_layer(self) -> list[LayerTiming]:
        """Per layer over all op kinds (``kind="*"``), in pipeline order."""
        rows = []
        for layer, per_kind in self._layers.items():
            if per_kind:
                count = sum(int(e[0]) for e in per_kind.values())
                total = sum(e[1] for e in per_kind.values())
                self_time = sum(e[2] for e in per_kind.values())
                rows.append(LayerTiming(layer, "*", count, total, self_time))
        return rows

    def shares(self) -> dict[str, float]:
        """Each layer's fraction of the summed self time (sums to 1 when anything ran)."""
        layers = self.by_layer()
        whole = sum(t.self_time for t in layers)
        return {t.layer: (t.self_time / whole if whole > 0 else 0.0) for t in layers}


class Timed:
    """A middleware wrapped to record its self time (see :func:`instrument`)."""

    __slots__ = ("_acc", "_clock", "inner", "name", "recorder")

    def __init__(
        self,
        inner: Middleware,
        name: str,
        recorder: TimingRecorder,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.inner = inner
        self.name = name
        self.recorder = recorder
        self._clock = clock
        self._acc = recorder.accumulator(name)

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        clock = self._clock
        inside = 0.0

        async def timed_next(next_op: Op, /) -> Any:
            nonlocal inside
            started = clock()
            try:
                return await call_next(next_op)
            finally:
                inside += clock() - started

        start = clock()
        try:
            return await self.inner(op, timed_next)
        finally:
            total = clock() - start
            entry = self._acc.get(op.kind)
            if entry is None:
                entry = self._acc[op.kind] = [0, 0.0, 0.0]
            entry[0] += 1
            entry[1] += total
            entry[2] += total - inside if total > inside else 0.0

    def __repr__(self) -> str:
        return f"Timed({self.inner!r}, name={self.name!r})"


class _BackendTimer:
    __slots__ = ("_acc", "_clock")

    def __init__(self, recorder: TimingRecorder, clock: Callable[[], float]) -> None:
        self._acc = recorder.accumulator(BACKEND)
        self._clock = clock

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        start = self._clock()
        try:
            return await call_next(op)
        finally:
            total = self._clock() - start
            entry = self._acc.get(op.kind)
            if entry is None:
                entry = self._acc[op.kind] = [0, 0.0, 0.0]
            entry[0] += 1
            entry[1] += total
            entry[2] += total


def layer_name(middleware: object) -> str:
    """A readable name: the function's or the class's name."""
    if isinstance(middleware, Timed):
        return middleware.name
    name = getattr(middleware, "__name__", None)
    return name if isinstance(name, str) else type(middleware).__name__


def layer_names(middlewares: Sequence[object]) -> list[str]:
    """Names of ``middlewares``, made unique with ``#2``, ``#3`` … suffixes."""
    seen: dict[str, int] = {}
    names = []
    for middleware in middlewares:
        base = layer_name(middleware)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return names


def instrument(
    pipeline: Pipeline,
    recorder: TimingRecorder,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Pipeline:
    """The same pipeline with every middleware and the backend call timed into ``recorder``.

    Instrumenting an instrumented pipeline re-instruments the original middlewares.
    """
    middlewares = [
        m.inner if isinstance(m, Timed) else m
        for m in pipeline.middlewares
        if not isinstance(m, _BackendTimer)
    ]
    names = layer_names(middlewares)
    recorder.declare([*names, BACKEND])
    wrapped = [Timed(m, name, recorder, clock) for m, name in zip(middlewares, names, strict=True)]
    return compose(*wrapped, _BackendTimer(recorder, clock), backend=pipeline.backend)


__all__ = [
    "BACKEND",
    "LayerTiming",
    "Timed",
    "TimingRecorder",
    "instrument",
    "layer_name",
    "layer_names",
]
