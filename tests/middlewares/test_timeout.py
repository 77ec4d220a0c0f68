"""Timeout: per-kind limits, streaming exclusions, TemporaryError on expiry."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import TemporaryError
from vkcompose.middlewares.timeout import Timeout, is_streaming, timeout_for
from vkcompose.ops import (
    ALL_OPS,
    Attach,
    DeletePod,
    Exec,
    GetPodStatus,
    ListPods,
    LogOptions,
    PortForward,
    ReadLogs,
)
from vkcompose.pipeline import compose


class Slow:
    """A backend whose list hangs until cancelled and whose status answers at once."""

    def __init__(self) -> None:
        self.cancelled = 0

    async def list_pods(self) -> list[Any]:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        return []

    async def get_pod_status(self, namespace: str, name: str) -> dict[str, Any]:
        return {"ok": True}

    async def exec(self, *args: Any) -> int:
        await anyio.sleep(0.05)
        return 7


@pytest.mark.anyio
async def test_expiry_cancels_the_backend_and_raises_temporary_error() -> None:
    backend = Slow()
    with anyio.fail_after(30):  # hang guard
        with pytest.raises(TemporaryError, match=r"pods\.list timed out") as caught:
            await compose(Timeout(0.01), backend=backend)(ListPods())
    assert caught.value.reason == "Timeout"
    assert backend.cancelled == 1


@pytest.mark.anyio
async def test_fast_ops_pass_through() -> None:
    pipeline = compose(Timeout(5.0), backend=Slow())
    assert await pipeline(GetPodStatus(namespace="n", name="p")) == {"ok": True}


@pytest.mark.anyio
async def test_streaming_ops_are_excluded_by_default_and_can_be_opted_in() -> None:
    with anyio.fail_after(30):
        assert await compose(Timeout(0.001), backend=Slow())(Exec(namespace="n", name="p")) == 7
        with pytest.raises(TemporaryError):
            await compose(Timeout(None, per_kind={"pod.exec": 0.001}), backend=Slow())(
                Exec(namespace="n", name="p")
            )


@pytest.mark.anyio
async def test_outer_cancellation_is_not_turned_into_a_timeout_error() -> None:
    backend = Slow()
    with anyio.move_on_after(0.01) as outer:
        await compose(Timeout(60.0), backend=backend)(ListPods())
    assert outer.cancelled_caught


def test_streaming_classification() -> None:
    streaming = {
        Exec(namespace="n", name="p"),
        Attach(namespace="n", name="p"),
        PortForward(namespace="n", name="p"),
        ReadLogs(namespace="n", name="p", options=LogOptions(follow=True)),
    }
    assert all(is_streaming(op) for op in streaming)
    assert not is_streaming(ReadLogs(namespace="n", name="p"))
    assert not is_streaming(DeletePod(pod={}))


@given(
    default=st.one_of(st.none(), st.floats(min_value=0.001, max_value=100)),
    per_kind=st.dictionaries(
        st.sampled_from([t.kind for t in ALL_OPS]),
        st.one_of(st.none(), st.floats(min_value=0.001, max_value=100)),
    ),
)
def test_timeout_for_per_kind_wins_and_streaming_needs_opt_in(
    default: float | None, per_kind: dict[str, float | None]
) -> None:
    for op in (ListPods(), Exec(namespace="n", name="p"), DeletePod(pod={})):
        got = timeout_for(op, default, per_kind)
        if op.kind in per_kind:
            assert got == per_kind[op.kind]
        elif is_streaming(op):
            assert got is None
        else:
            assert got == default
