"""Prometheus metrics per op kind and outcome.

* ``vkcompose_ops_total{kind, outcome}`` — a counter of finished ops; ``outcome`` is one of
  ``ok``, ``temporary``, ``permanent``, ``not_found``, ``invalid``, ``unsupported``, ``error``
  (any other exception) and ``cancelled``;
* ``vkcompose_op_duration_seconds{kind}`` — a histogram of op latencies.

The collectors live in the :class:`~prometheus_client.CollectorRegistry` you pass (default: a
fresh one per :class:`Metrics`, not the process-global registry, so tests and several nodes in
one process stay isolated). :func:`serve_metrics` exposes a registry over HTTP (127.0.0.1 by
default).

Pure core: :func:`outcome_of`. Adapter: :class:`Metrics`.

>>> from vkcompose.errors import NotFound
>>> outcome_of(None), outcome_of(NotFound("gone")), outcome_of(KeyError("k"))
('ok', 'not_found', 'error')

Usage::

    metrics = Metrics()
    pipeline = compose(metrics, Tracing(), Retry(), backend=backend)
    server = serve_metrics(9464, metrics.registry)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from vkcompose.errors import InvalidInput, NotFound, PermanentError, TemporaryError, Unsupported
from vkcompose.ops import Op
from vkcompose.pipeline import Handler

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Latency buckets in seconds: from sub-millisecond in-memory backends to slow cloud APIs."""

_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (TemporaryError, "temporary"),
    (NotFound, "not_found"),
    (InvalidInput, "invalid"),
    (Unsupported, "unsupported"),
    (PermanentError, "permanent"),
)


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` label for an op that raised ``error`` (``None``: it succeeded)."""
    if error is None:
        return "ok"
    for cls, label in _OUTCOMES:
        if isinstance(error, cls):
            return label
    if isinstance(error, Exception):
        return "error"
    return "cancelled"


class Metrics:
    """Count ops and time them into a Prometheus registry (see the module docs)."""

    __slots__ = ("_counters", "_histograms", "duration", "ops_total", "registry")

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.ops_total = Counter(
            "vkcompose_ops",
            "Operations handled by the pipeline, by op kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "vkcompose_op_duration_seconds",
            "Time to handle an operation, by op kind.",
            ["kind"],
            buckets=tuple(buckets),
            registry=self.registry,
        )
        self._counters: dict[tuple[str, str], Any] = {}
        self._histograms: dict[str, Any] = {}

    def _observe(self, kind: str, outcome: str, seconds: float) -> None:
        counter = self._counters.get((kind, outcome))
        if counter is None:
            counter = self._counters[(kind, outcome)] = self.ops_total.labels(kind, outcome)
        counter.inc()
        histogram = self._histograms.get(kind)
        if histogram is None:
            histogram = self._histograms[kind] = self.duration.labels(kind)
        histogram.observe(seconds)

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        start = time.perf_counter()
        try:
            result = await call_next(op)
        except BaseException as error:
            self._observe(op.kind, outcome_of(error), time.perf_counter() - start)
            raise
        self._observe(op.kind, "ok", time.perf_counter() - start)
        return result

    def __repr__(self) -> str:
        return "Metrics()"


class MetricsServer:
    """A running metrics endpoint (``GET /metrics``); :meth:`close` stops it."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread
        self.host: str = server.server_address[0]
        self.port: int = server.server_address[1]

    @property
    def url(self) -> str:
        """The metrics URL."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    async def aclose(self) -> None:
        """:meth:`close` from async code (without blocking the event loop)."""
        await anyio.to_thread.run_sync(self.close)


def serve_metrics(
    port: int, registry: CollectorRegistry, *, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``registry`` in Prometheus text format on ``host:port`` (``port=0``: any free
    port; read :attr:`MetricsServer.port`) from a daemon thread."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)


__all__ = ["DEFAULT_BUCKETS", "Metrics", "MetricsServer", "outcome_of", "serve_metrics"]
