"""Tracing: spans per op, semconv attributes, traceparent continuation, hooks, OTLP wiring."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, StatusCode

from vkcompose.errors import TemporaryError
from vkcompose.middlewares.retry import Retry
from vkcompose.middlewares.tracing import (
    OTLP_MISSING,
    Tracing,
    configure_tracing,
    span_attributes,
    trace_carrier,
)
from vkcompose.ops import (
    CreatePod,
    DeletePod,
    Exec,
    GetPodStatus,
    ListPods,
    NodeInfo,
    Op,
    ReadLogs,
)
from vkcompose.pipeline import compose
from vkcompose.testing.clock import FakeClock

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "prod", "uid": "u-1"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"nodeName": "vk-1"}}


class Backend:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.seen_trace_ids: list[int] = []

    async def create_pod(self, pod: dict[str, Any]) -> None:
        self.seen_trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        if self.fail:
            raise self.fail

    async def get_pod_status(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}}

    async def list_pods(self) -> list[Any]:
        if self.fail:
            raise self.fail
        return []

    async def exec(self, *args: Any) -> int:
        return 0


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    return configure_tracing(processors=[SimpleSpanProcessor(exporter)])


@pytest.mark.anyio
async def test_one_span_per_op_named_by_kind_with_semconv_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    pipeline = compose(Tracing(provider), backend=Backend())
    node = NodeInfo(name="vk-node")
    await pipeline(CreatePod(pod=pod(), node=node))
    await pipeline(GetPodStatus(namespace="prod", name="web"))
    await pipeline(Exec(namespace="prod", name="web", container="app", command=["ls"]))
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["pod.create", "pod.status", "pod.exec"]
    assert dict(spans[0].attributes or {}) == {
        "k8s.pod.name": "web",
        "k8s.pod.uid": "u-1",
        "k8s.namespace.name": "prod",
        "k8s.node.name": "vk-node",
    }
    assert dict(spans[1].attributes or {}) == {
        "k8s.pod.name": "web",
        "k8s.namespace.name": "prod",
    }
    assert (spans[2].attributes or {})["k8s.container.name"] == "app"
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert spans[0].resource.attributes["service.name"] == "vkcompose"


@pytest.mark.anyio
async def test_failure_sets_error_type_status_and_exception_event(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    pipeline = compose(Tracing(provider), backend=Backend(fail=TemporaryError("busy")))
    with pytest.raises(TemporaryError):
        await pipeline(CreatePod(pod=pod()))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "busy"
    assert (span.attributes or {})["error.type"] == "vkcompose.errors.TemporaryError"
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.message"] == "busy"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "annotations",
    [
        {"vkcompose.io/traceparent": TRACEPARENT, "vkcompose.io/tracestate": "k=v"},
        {"traceparent": TRACEPARENT, "tracestate": "k=v"},
    ],
)
async def test_continues_the_submitters_trace_from_annotations(
    provider: TracerProvider, exporter: InMemorySpanExporter, annotations: dict[str, str]
) -> None:
    backend = Backend()
    pipeline = compose(Tracing(provider), backend=backend)
    with provider.get_tracer("node").start_as_current_span("reconcile") as node_span:
        await pipeline(CreatePod(pod=pod(annotations)))
    op_span = next(s for s in exporter.get_finished_spans() if s.name == "pod.create")
    assert op_span.context is not None and op_span.parent is not None
    assert op_span.context.trace_id == int(TRACE_ID, 16)
    assert op_span.parent.span_id == int(PARENT_ID, 16)
    assert op_span.parent.is_remote
    assert op_span.context.trace_state.get("k") == "v"
    assert backend.seen_trace_ids == [int(TRACE_ID, 16)]
    # the node's own span stays reachable as a link
    assert [link.context.span_id for link in op_span.links] == [
        node_span.get_span_context().span_id
    ]


@pytest.mark.anyio
async def test_invalid_traceparent_falls_back_to_current_context(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    pipeline = compose(Tracing(provider), backend=Backend())
    with provider.get_tracer("node").start_as_current_span("reconcile") as node_span:
        await pipeline(CreatePod(pod=pod({"traceparent": "garbage"})))
    op_span = next(s for s in exporter.get_finished_spans() if s.name == "pod.create")
    assert op_span.parent is not None
    assert op_span.parent.span_id == node_span.get_span_context().span_id
    assert not op_span.links


@pytest.mark.anyio
async def test_failing_hooks_are_recorded_and_never_fail_the_op(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    ended: list[str] = []

    def bad_start(span: Span, op: Op) -> None:
        raise ValueError("start hook broke")

    def good_start(span: Span, op: Op) -> None:
        span.set_attribute("custom", op.kind)

    def bad_end(span: Span, op: Op, result: Any, error: BaseException | None) -> None:
        ended.append(op.kind)
        raise RuntimeError("end hook broke")

    tracing = Tracing(provider, on_start=[bad_start, good_start], on_end=[bad_end])
    assert await compose(tracing, backend=Backend())(ListPods()) == []
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert (span.attributes or {})["custom"] == "pods.list"
    hooks = [(e.attributes or {}).get("vkcompose.hook") for e in span.events]
    assert [h.rsplit(".", 1)[-1] for h in hooks if isinstance(h, str)] == ["bad_start", "bad_end"]
    assert ended == ["pods.list"]


@pytest.mark.anyio
async def test_retry_events_land_on_the_op_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    clock = FakeClock()
    calls = iter([TemporaryError("x", delay=0.1), None])

    class Once:
        async def list_pods(self) -> list[Any]:
            error = next(calls)
            if error:
                raise error
            return []

    retry = Retry(clock=clock.time, sleep=clock.sleep)
    await compose(Tracing(provider), retry, backend=Once())(ListPods())
    (span,) = exporter.get_finished_spans()
    assert [(e.attributes or {})["vkcompose.retry.attempt"] for e in span.events] == [1, 2]


@pytest.mark.anyio
async def test_redact_applies_to_status_and_exception_event(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    secret = "hunter2-s3cret"

    def redact(text: str) -> str:
        return text.replace(secret, "[REDACTED]")

    pipeline = compose(
        Tracing(provider, redact=redact), backend=Backend(fail=TemporaryError(f"pw {secret}"))
    )
    with pytest.raises(TemporaryError):
        await pipeline(CreatePod(pod=pod()))
    (span,) = exporter.get_finished_spans()
    dumped = span.to_json()
    assert secret not in dumped and "[REDACTED]" in dumped


def test_default_tracing_uses_the_global_noop_provider() -> None:
    import anyio

    assert anyio.run(compose(Tracing(), backend=Backend()), ListPods()) == []


def test_configure_tracing_without_endpoint_has_no_exporter() -> None:
    provider = configure_tracing()
    assert not provider._active_span_processor._span_processors


def test_configure_tracing_reports_missing_otlp_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(RuntimeError) as caught:
        configure_tracing("http://127.0.0.1:4318")
    assert str(caught.value) == OTLP_MISSING
    assert "vkcompose[otlp]" in OTLP_MISSING


def test_configure_tracing_wires_the_otlp_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []

    class FakeExporter(InMemorySpanExporter):
        def __init__(self, endpoint: str) -> None:
            super().__init__()
            created.append(endpoint)

    module = types.ModuleType("trace_exporter")
    module.OTLPSpanExporter = FakeExporter  # type: ignore[attr-defined]
    monkeypatch.setitem(
        sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", module
    )
    provider = configure_tracing("http://127.0.0.1:4318/")
    provider.shutdown()
    assert created == ["http://127.0.0.1:4318/v1/traces"]


keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-./", min_size=1, max_size=20)


@given(
    annotations=st.dictionaries(keys, st.text(max_size=10), max_size=5),
    plain=st.booleans(),
)
def test_trace_carrier_prefers_vkcompose_keys(annotations: dict[str, str], plain: bool) -> None:
    if plain:
        annotations["traceparent"] = "plain"
    annotations["vkcompose.io/traceparent"] = TRACEPARENT
    carrier = trace_carrier({"metadata": {"annotations": annotations}})
    assert carrier["traceparent"] == TRACEPARENT
    assert set(carrier) <= {"traceparent", "tracestate"}


@given(name=st.text(max_size=8), namespace=st.text(max_size=8), container=st.text(max_size=8))
def test_span_attributes_never_carry_empty_values(
    name: str, namespace: str, container: str
) -> None:
    for op in (
        CreatePod(pod={"metadata": {"name": name, "namespace": namespace}}),
        ReadLogs(namespace=namespace, name=name, container=container),
    ):
        attributes = span_attributes(op)
        assert set(attributes) <= {
            "k8s.pod.name",
            "k8s.pod.uid",
            "k8s.namespace.name",
            "k8s.node.name",
            "k8s.container.name",
        }
        assert all(v != "" for v in attributes.values())


@pytest.mark.anyio
async def test_noop_provider_keeps_the_current_and_the_submitters_span_context() -> None:
    seen: list[trace.SpanContext] = []

    class Backend:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            seen.append(trace.get_current_span().get_span_context())

        async def delete_pod(self, pod: dict[str, Any], grace: int | None) -> None:
            raise TemporaryError("busy")

    for tracing in (Tracing(), Tracing(trace.NoOpTracerProvider())):
        pipeline = compose(tracing, backend=Backend())
        await pipeline(CreatePod(pod=pod()))  # skipped span: the outer (invalid) context stays
        assert not seen[-1].is_valid
        await pipeline(CreatePod(pod=pod({"traceparent": TRACEPARENT})))  # still continued
        assert format(seen[-1].trace_id, "032x") == TRACE_ID
        with pytest.raises(TemporaryError, match="busy"):
            await pipeline(DeletePod(pod=pod()))
