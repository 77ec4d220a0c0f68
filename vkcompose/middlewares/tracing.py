"""OpenTelemetry tracing: one span per operation, continuing the submitter's trace.

The span is named by ``op.kind`` (``pod.create`` …) and carries the semantic-convention
attributes ``k8s.pod.name``, ``k8s.pod.uid``, ``k8s.namespace.name``, ``k8s.node.name`` and
``k8s.container.name``; a failure sets ``error.type`` and the ERROR status.

A pod annotated with a W3C trace context — ``vkcompose.io/traceparent`` (and
``vkcompose.io/tracestate``), or plainly ``traceparent``/``tracestate`` — gets its spans in *that*
trace, so whoever submitted the pod sees its start in the backend; the span the node was in
when it issued the op is kept as a link.

Pure core: :func:`trace_carrier` and :func:`span_attributes`. Adapter: :class:`Tracing`.

>>> pod = {"metadata": {"name": "web", "namespace": "prod", "annotations": {
...     "vkcompose.io/traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}
>>> trace_carrier(pod)
{'traceparent': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'}
>>> from vkcompose.ops import CreatePod
>>> span_attributes(CreatePod(pod=pod))
{'k8s.pod.name': 'web', 'k8s.namespace.name': 'prod'}

Usage::

    provider = configure_tracing("http://collector:4318")
    pipeline = compose(Tracing(provider), Retry(), backend=backend)
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from vkcompose.middlewares.retry.middleware import error_type
from vkcompose.ops import Op
from vkcompose.pipeline import Handler
from vkcompose.podspec import Pod

TRACEPARENT_ANNOTATION = "vkcompose.io/traceparent"
"""Pod annotation holding a W3C ``traceparent`` to continue (plain ``traceparent`` works too)."""
TRACESTATE_ANNOTATION = "vkcompose.io/tracestate"
"""Pod annotation holding the W3C ``tracestate`` that goes with the traceparent."""

StartHook = Callable[[Span, Op], None]
"""Called when an op's span starts (e.g. to add attributes)."""
EndHook = Callable[[Span, Op, Any, BaseException | None], None]
"""Called before an op's span ends with the result (or ``None``) and the error (or ``None``)."""

_PROPAGATOR = TraceContextTextMapPropagator()


def trace_carrier(pod: Pod) -> dict[str, str]:
    """The W3C trace-context headers found in the pod's annotations (empty when none)."""
    annotations: Mapping[str, Any] = (pod.get("metadata") or {}).get("annotations") or {}
    if (  # the common case: no trace context at all
        TRACEPARENT_ANNOTATION not in annotations
        and "traceparent" not in annotations
        and TRACESTATE_ANNOTATION not in annotations
        and "tracestate" not in annotations
    ):
        return {}
    carrier: dict[str, str] = {}
    for header, key in (
        ("traceparent", TRACEPARENT_ANNOTATION),
        ("tracestate", TRACESTATE_ANNOTATION),
    ):
        value = annotations.get(key) or annotations.get(header)
        if isinstance(value, str) and value:
            carrier[header] = value
    return carrier


def span_attributes(op: Op) -> dict[str, AttributeValue]:
    """Semantic-convention attributes describing ``op`` (pod, namespace, node, container)."""
    attributes: dict[str, AttributeValue] = {}
    pod = op.pod_or_none
    node = getattr(op, "node", None)
    if pod is not None:
        meta = pod.get("metadata") or {}
        for attribute, field in (
            ("k8s.pod.name", "name"),
            ("k8s.pod.uid", "uid"),
            ("k8s.namespace.name", "namespace"),
        ):
            value = meta.get(field)
            if value:
                attributes[attribute] = value
        node_name = node.name if node is not None else (pod.get("spec") or {}).get("nodeName")
        if node_name:
            attributes["k8s.node.name"] = node_name
    else:
        key = op.pod_key
        if key is not None:
            if key[1]:
                attributes["k8s.pod.name"] = key[1]
            if key[0]:
                attributes["k8s.namespace.name"] = key[0]
        if node is not None:
            attributes["k8s.node.name"] = node.name
    container = getattr(op, "container", None)
    if container:
        attributes["k8s.container.name"] = container
    return attributes


def _identity(text: str) -> str:
    return text


def record_error(
    span: Span,
    error: BaseException,
    redact: Callable[[str], str] = _identity,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> None:
    """Add an ``exception`` event (semconv attributes) with message and stack trace redacted."""
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    event: dict[str, AttributeValue] = {
        "exception.type": error_type(error),
        "exception.message": redact(str(error)),
        "exception.stacktrace": redact(stack),
    }
    if attributes:
        event.update(attributes)
    span.add_event("exception", event)


class Tracing:
    """One span per op, named by its kind, with Kubernetes semconv attributes.

    ``tracer_provider`` defaults to the global one (a no-op until configured). ``on_start`` and
    ``on_end`` hooks may add attributes; a hook that raises is recorded on the span as an
    ``exception`` event with ``vkcompose.hook`` set and never fails the op. ``redact`` is applied
    to every error message and stack trace put on spans (pass a ``SecretRegistry``'s
    ``redact_text`` from :mod:`vkcompose.middlewares.redaction`).
    """

    __slots__ = ("_on_end", "_on_start", "_proxy", "_redact", "_tracer")

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        on_start: Iterable[StartHook] = (),
        on_end: Iterable[EndHook] = (),
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self._tracer = trace.get_tracer("vkcompose", tracer_provider=tracer_provider)
        # a proxy of the global provider, while no global provider is set (set only once)
        self._proxy = isinstance(self._tracer, trace.ProxyTracer)
        self._on_start = tuple(on_start)
        self._on_end = tuple(on_end)
        self._redact = redact or _identity

    def _hook_failed(self, span: Span, hook: object, error: Exception) -> None:
        name = getattr(hook, "__qualname__", None) or type(hook).__qualname__
        record_error(span, error, self._redact, {"vkcompose.hook": name})

    def _end(self, span: Span, op: Op, result: Any, error: BaseException | None) -> None:
        for hook in self._on_end:
            try:
                hook(span, op, result, error)
            except Exception as hook_error:
                self._hook_failed(span, hook, hook_error)

    def _records_nothing(self) -> bool:
        """Whether spans are no-ops: a no-op tracer, or the global one while no provider is set."""
        if self._proxy:
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                return True
            self._proxy = False  # OpenTelemetry sets the global provider once, for good
            return False
        return isinstance(self._tracer, trace.NoOpTracer)

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        context: Context | None = None
        links: list[Link] = []
        pod = op.pod_or_none
        carrier = trace_carrier(pod) if pod is not None else None
        if not carrier and not self._on_start and not self._on_end and self._records_nothing():
            # A no-op span would only re-install the current span context: skip the span, its
            # attributes and the error formatting.
            return await call_next(op)
        if carrier:
            context = _PROPAGATOR.extract(carrier)
            if not trace.get_current_span(context).get_span_context().is_valid:
                context = None
            else:
                current = trace.get_current_span().get_span_context()
                if current.is_valid:
                    links.append(Link(current))
        with self._tracer.start_as_current_span(
            op.kind,
            context=context,
            kind=SpanKind.INTERNAL,
            attributes=span_attributes(op),
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            for hook in self._on_start:
                try:
                    hook(span, op)
                except Exception as hook_error:
                    self._hook_failed(span, hook, hook_error)
            try:
                result = await call_next(op)
            except Exception as error:
                span.set_attribute("error.type", error_type(error))
                record_error(span, error, self._redact)
                span.set_status(Status(StatusCode.ERROR, self._redact(str(error))))
                self._end(span, op, None, error)
                raise
            except BaseException as cancelled:  # cancellation: not a failure of the op
                span.set_attribute("vkcompose.cancelled", True)
                self._end(span, op, None, cancelled)
                raise
            self._end(span, op, result, None)
            return result

    def __repr__(self) -> str:
        return "Tracing()"


OTLP_MISSING = (
    "OTLP export needs the optional package 'opentelemetry-exporter-otlp-proto-http': "
    "install it with  pip install 'vkcompose[otlp]'"
)


def configure_tracing(
    otlp_endpoint: str | None = None,
    *,
    service_name: str = "vkcompose",
    processors: Iterable[SpanProcessor] = (),
) -> TracerProvider:
    """A :class:`TracerProvider` for :class:`Tracing`; exports over OTLP/HTTP when configured.

    ``otlp_endpoint`` is the collector's base URL (``http://host:4318``; ``/v1/traces`` is
    appended unless present). Without it no exporter is installed: add ``processors`` (e.g.
    a ``SimpleSpanProcessor(InMemorySpanExporter())`` in tests). The provider is returned, not
    made global — pass it to ``Tracing(provider)``.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    for processor in processors:
        provider.add_span_processor(processor)
    if otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError as missing:
            raise RuntimeError(OTLP_MISSING) from missing
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        endpoint = otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


__all__ = [
    "OTLP_MISSING",
    "TRACEPARENT_ANNOTATION",
    "TRACESTATE_ANNOTATION",
    "EndHook",
    "StartHook",
    "Tracing",
    "configure_tracing",
    "record_error",
    "span_attributes",
    "trace_carrier",
]
