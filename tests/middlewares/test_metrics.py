"""Metrics: counters by kind/outcome, latency histogram, isolated registry, HTTP endpoint."""

from __future__ import annotations

import urllib.request
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry

from vkcompose.errors import (
    InvalidInput,
    NotFound,
    PermanentError,
    TemporaryError,
    Unsupported,
)
from vkcompose.middlewares.metrics import Metrics, outcome_of, serve_metrics
from vkcompose.ops import GetPodStatus, ListPods
from vkcompose.pipeline import compose

ERRORS: dict[str, Exception | None] = {
    "ok": None,
    "temporary": TemporaryError("t"),
    "permanent": PermanentError("p"),
    "not_found": NotFound("n"),
    "invalid": InvalidInput("i"),
    "unsupported": Unsupported("u"),
    "error": RuntimeError("r"),
}


class Scripted:
    def __init__(self) -> None:
        self.next: Exception | None = None

    async def list_pods(self) -> list[Any]:
        if self.next is not None:
            raise self.next
        return []

    async def get_pod_status(self, namespace: str, name: str) -> dict[str, Any]:
        await anyio.sleep_forever()
        return {}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@given(st.lists(st.sampled_from(sorted(ERRORS)), max_size=30))
def test_counts_every_op_by_kind_and_outcome(outcomes: list[str]) -> None:
    metrics = Metrics()
    backend = Scripted()
    pipeline = compose(metrics, backend=backend)

    async def run() -> None:
        for outcome in outcomes:
            backend.next = ERRORS[outcome]
            try:
                await pipeline(ListPods())
            except Exception:
                assert outcome != "ok"

    anyio.run(run)
    for outcome in ERRORS:
        expected = outcomes.count(outcome)
        got = sample(metrics.registry, "vkcompose_ops_total", kind="pods.list", outcome=outcome)
        assert got == expected
    count = sample(metrics.registry, "vkcompose_op_duration_seconds_count", kind="pods.list")
    assert count == len(outcomes)
    inf = sample(
        metrics.registry, "vkcompose_op_duration_seconds_bucket", kind="pods.list", le="+Inf"
    )
    assert inf == len(outcomes)


@pytest.mark.anyio
async def test_cancelled_ops_are_counted_as_cancelled() -> None:
    metrics = Metrics()
    pipeline = compose(metrics, backend=Scripted())
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline, GetPodStatus(namespace="n", name="p"))
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert (
        sample(metrics.registry, "vkcompose_ops_total", kind="pod.status", outcome="cancelled") == 1
    )


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    assert a.registry is not b.registry and a.registry is not REGISTRY
    anyio.run(compose(a, backend=Scripted()), ListPods())
    assert sample(b.registry, "vkcompose_ops_total", kind="pods.list", outcome="ok") == 0
    assert (
        REGISTRY.get_sample_value("vkcompose_ops_total", {"kind": "pods.list", "outcome": "ok"})
        is None
    )


def test_outcome_labels_are_bounded() -> None:
    assert {outcome_of(e) for e in ERRORS.values()} == set(ERRORS)
    assert outcome_of(KeyboardInterrupt()) == "cancelled"


def test_serve_metrics_on_loopback() -> None:
    metrics = Metrics()
    anyio.run(compose(metrics, backend=Scripted()), ListPods())
    server = serve_metrics(0, metrics.registry)
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        with urllib.request.urlopen(server.url, timeout=10) as response:
            body = response.read().decode()
    finally:
        server.close()
    assert 'vkcompose_ops_total{kind="pods.list",outcome="ok"} 1.0' in body
    assert "vkcompose_op_duration_seconds_bucket" in body
