"""Composition laws of the pipeline core."""

from __future__ import annotations

import contextvars
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import InvalidInput, NotFound, TemporaryError, Unsupported
from vkcompose.ops import CreatePod, GetPodStatus, ListPods, Op, ReadLogs
from vkcompose.pipeline import Handler, compose

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class Recorder:
    """A backend that records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[Op] = []
        self.context: list[str] = []

    async def create_pod(self, pod: dict[str, Any]) -> None:
        self.seen.append(CreatePod(pod=pod))
        self.context.append(REQUEST_ID.get())

    async def list_pods(self) -> list[dict[str, Any]]:
        self.context.append(REQUEST_ID.get())
        return [{"trace": []}]


def tagging(name: str, log: list[str]) -> Any:
    """A middleware that logs its name on the way in and out and tags the result."""

    async def middleware(op: Op, call_next: Handler) -> Any:
        log.append(f"in:{name}")
        result = await call_next(op)
        log.append(f"out:{name}")
        if isinstance(result, list):
            result = [{"trace": [*result[0]["trace"], name]}]
        return result

    return middleware


names = st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=3), max_size=8, unique=True)


@given(names)
def test_ops_flow_outer_to_inner_and_results_inner_to_outer(layer_names: list[str]) -> None:
    log: list[str] = []
    backend = Recorder()
    pipeline = compose(*(tagging(n, log) for n in layer_names), backend=backend)
    result = anyio.run(pipeline, ListPods())
    assert log == [f"in:{n}" for n in layer_names] + [f"out:{n}" for n in reversed(layer_names)]
    assert result == [{"trace": list(reversed(layer_names))}]


@given(names, st.integers(min_value=0, max_value=8))
def test_nested_compose_is_flat_compose(layer_names: list[str], split: int) -> None:
    backend = Recorder()
    flat_log: list[str] = []
    nested_log: list[str] = []
    flat = compose(*(tagging(n, flat_log) for n in layer_names), backend=backend)
    inner = compose(*(tagging(n, nested_log) for n in layer_names[split:]), backend=backend)
    nested = compose(*(tagging(n, nested_log) for n in layer_names[:split]), backend=inner)
    assert anyio.run(flat, ListPods()) == anyio.run(nested, ListPods())
    assert flat_log == nested_log
    assert len(nested.middlewares) == len(layer_names)
    assert nested.backend is backend


@given(
    st.sampled_from(
        [NotFound("x"), InvalidInput("y"), TemporaryError("z", delay=1.5), KeyError("k")]
    )
)
def test_exceptions_propagate_unchanged(error: Exception) -> None:
    class Failing:
        async def list_pods(self) -> list[Any]:
            raise error

    async def passthrough(op: Op, call_next: Handler) -> Any:
        return await call_next(op)

    pipeline = compose(passthrough, passthrough, backend=Failing())
    with pytest.raises(type(error)) as caught:
        anyio.run(pipeline, ListPods())
    assert caught.value is error


def test_contextvars_set_outside_reach_the_backend() -> None:
    backend = Recorder()

    async def set_id(op: Op, call_next: Handler) -> Any:
        token = REQUEST_ID.set("req-42")
        try:
            return await call_next(op)
        finally:
            REQUEST_ID.reset(token)

    async def passthrough(op: Op, call_next: Handler) -> Any:
        return await call_next(op)

    anyio.run(compose(set_id, passthrough, backend=backend), ListPods())
    assert backend.context == ["req-42"]


def test_middleware_changes_op_by_evolving_it() -> None:
    backend = Recorder()
    original = {"metadata": {"name": "a", "namespace": "ns", "labels": {}}}

    async def relabel(op: Op, call_next: Handler) -> Any:
        if isinstance(op, CreatePod):
            pod = {**op.pod, "metadata": {**op.pod["metadata"], "labels": {"seen": "yes"}}}
            op = attrs.evolve(op, pod=pod)
        return await call_next(op)

    anyio.run(compose(relabel, backend=backend), CreatePod(pod=original))
    assert backend.seen[0].pod_or_none == {
        "metadata": {"name": "a", "namespace": "ns", "labels": {"seen": "yes"}}
    }
    assert original["metadata"]["labels"] == {}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        backend.seen[0].pod = {}  # type: ignore[misc]


def test_unsupported_op_is_refused_before_any_middleware_runs() -> None:
    touched: list[str] = []

    async def side_effect(op: Op, call_next: Handler) -> Any:
        touched.append(op.kind)
        return await call_next(op)

    pipeline = compose(side_effect, backend=Recorder())
    assert not pipeline.supports(ReadLogs)
    with pytest.raises(Unsupported, match=r"pod\.logs"):
        anyio.run(pipeline, ReadLogs(namespace="ns", name="p", container="c"))
    with pytest.raises(Unsupported):
        anyio.run(pipeline, GetPodStatus(namespace="ns", name="p"))
    assert touched == []


def test_sub_op_unsupported_at_terminal() -> None:
    from vkcompose.ops import AllocatePodIPs

    async def asks_ips(op: Op, call_next: Handler) -> Any:
        if isinstance(op, CreatePod):
            with pytest.raises(Unsupported):
                await call_next(AllocatePodIPs(pod=op.pod))
        return await call_next(op)

    backend = Recorder()
    anyio.run(compose(asks_ips, backend=backend), CreatePod(pod={"metadata": {"name": "x"}}))
    assert len(backend.seen) == 1


def test_every_op_has_kind_and_idempotence() -> None:
    from vkcompose.ops import ALL_OPS

    kinds = [t.kind for t in ALL_OPS]
    assert len(set(kinds)) == len(kinds)
    assert CreatePod.idempotent is False
    assert ListPods.idempotent is True


def test_volume_paths_reach_backends_that_accept_them() -> None:
    received: list[Any] = []

    class WithVolumes:
        async def create_pod(
            self, pod: dict[str, Any], /, *, volume_paths: dict[str, str] | None = None
        ) -> None:
            received.append(volume_paths)

    op = CreatePod(pod={"metadata": {"name": "v"}}, volume_paths={"data": "/srv/data"})
    anyio.run(compose(backend=WithVolumes()), op)
    anyio.run(compose(backend=Recorder()), op)
    assert received == [{"data": "/srv/data"}]
