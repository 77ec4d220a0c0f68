"""Timing hook: self time per layer and per backend op, on a virtual clock."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import TemporaryError
from vkcompose.middlewares.timing import BACKEND, TimingRecorder, instrument, layer_names
from vkcompose.ops import CreatePod, ListPods, Op
from vkcompose.pipeline import Handler, compose
from vkcompose.testing.clock import FakeClock


class Sleeper:
    """A middleware spending ``before`` and ``after`` (virtual) seconds around call_next."""

    def __init__(self, clock: FakeClock, before: float, after: float) -> None:
        self.clock, self.before, self.after = clock, before, after

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        await self.clock.sleep(self.before)
        try:
            return await call_next(op)
        finally:
            await self.clock.sleep(self.after)


class Backend:
    def __init__(self, clock: FakeClock, seconds: float, fail: bool = False) -> None:
        self.clock, self.seconds, self.fail = clock, seconds, fail

    async def list_pods(self) -> list[Any]:
        await self.clock.sleep(self.seconds)
        if self.fail:
            raise TemporaryError("x")
        return []


durations = st.floats(min_value=0, max_value=5, allow_nan=False)


@given(layers=st.lists(st.tuples(durations, durations), max_size=6), backend_time=durations)
def test_self_times_are_exact_and_add_up(
    layers: list[tuple[float, float]], backend_time: float
) -> None:
    clock = FakeClock()
    pipeline = compose(
        *(Sleeper(clock, b, a) for b, a in layers), backend=Backend(clock, backend_time)
    )
    recorder = TimingRecorder()
    timed = instrument(pipeline, recorder, clock=clock.time)
    anyio.run(timed, ListPods())
    anyio.run(timed, ListPods())
    stats = recorder.stats()
    names = layer_names(pipeline.middlewares)
    assert [s.layer for s in stats] == [*names, BACKEND]
    for (before, after), stat in zip(layers, stats, strict=False):
        assert stat.count == 2 and stat.kind == "pods.list"
        assert stat.self_time == pytest.approx(2 * (before + after))
    assert stats[-1].self_time == pytest.approx(2 * backend_time)
    whole = 2 * (backend_time + sum(b + a for b, a in layers))
    assert sum(s.self_time for s in stats) == pytest.approx(whole)
    if layers:
        assert stats[0].total == pytest.approx(whole)
    if whole > 0:
        assert sum(recorder.shares().values()) == pytest.approx(1.0)


def test_failures_and_sub_ops_are_timed() -> None:
    clock = FakeClock()

    async def asks_twice(op: Op, call_next: Handler, /) -> Any:
        await call_next(ListPods())
        await clock.sleep(1.0)
        return await call_next(op)

    recorder = TimingRecorder()
    timed = instrument(
        compose(asks_twice, backend=Backend(clock, 2.0, fail=True)), recorder, clock=clock.time
    )
    with pytest.raises(TemporaryError):
        anyio.run(timed, ListPods())
    by_layer = {t.layer: t for t in recorder.by_layer()}
    assert by_layer["asks_twice"].count == 1
    assert by_layer["asks_twice"].total == pytest.approx(2.0)  # failed at the first sub-op
    assert by_layer[BACKEND].count == 1


def test_instrument_leaves_the_original_alone_and_is_idempotent() -> None:
    async def a(op: Op, call_next: Handler, /) -> Any:
        return await call_next(op)

    clock = FakeClock()
    original = compose(a, a, backend=Backend(clock, 0.0))
    recorder = TimingRecorder()
    twice = instrument(instrument(original, TimingRecorder()), recorder)
    assert len(original.middlewares) == 2
    assert len(twice.middlewares) == 3
    anyio.run(twice, ListPods())
    assert [t.layer for t in recorder.by_layer()] == ["a", "a#2", BACKEND]
    assert recorder.stats()[0].mean_self >= 0


def test_kinds_are_kept_apart() -> None:
    class Both:
        async def list_pods(self) -> list[Any]:
            return []

        async def create_pod(self, pod: dict[str, Any]) -> None:
            return None

    recorder = TimingRecorder()
    timed = instrument(compose(backend=Both()), recorder)
    anyio.run(timed, ListPods())
    anyio.run(timed, CreatePod(pod={}))
    anyio.run(timed, CreatePod(pod={}))
    assert [(t.kind, t.count) for t in recorder.stats()] == [("pod.create", 2), ("pods.list", 1)]
