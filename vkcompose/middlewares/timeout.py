"""Timeouts: bound how long one operation may take, per op kind.

An op that runs past its timeout is cancelled (anyio cancel scope, so the backend's ``await``
is interrupted cleanly) and fails with :class:`~vkcompose.errors.TemporaryError` (reason
``Timeout``), which an outer :class:`~vkcompose.middlewares.retry.Retry` may retry. Streaming
ops — exec, attach, port-forward and followed logs — are long-lived by nature and excluded
unless ``per_kind`` names their kind.

Pure core: :func:`is_streaming` and :func:`timeout_for`. Adapter: :class:`Timeout`.

>>> from vkcompose.ops import Exec, ListPods
>>> timeout_for(ListPods(), 30.0, {"pods.list": 5.0})
5.0
>>> timeout_for(Exec(namespace="ns", name="p"), 30.0, {}) is None
True

Usage::

    compose(Retry(), Timeout(10.0, per_kind={"pod.delete": 60.0}), backend=backend)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from vkcompose.errors import TemporaryError
from vkcompose.ops import Op, ReadLogs
from vkcompose.pipeline import Handler

STREAMING_KINDS = frozenset({"pod.exec", "pod.attach", "pod.portforward"})
"""Op kinds that hold a session open for as long as the client wants."""


def is_streaming(op: Op) -> bool:
    """Whether ``op`` is a long-lived session (exec, attach, port-forward, ``follow`` logs)."""
    if op.kind in STREAMING_KINDS:
        return True
    return isinstance(op, ReadLogs) and op.options.follow


def timeout_for(
    op: Op, default: float | None, per_kind: Mapping[str, float | None]
) -> float | None:
    """Seconds ``op`` may take (``None``: unbounded). ``per_kind`` wins; streaming ops are
    unbounded unless their kind is in ``per_kind``."""
    if op.kind in per_kind:
        return per_kind[op.kind]
    if is_streaming(op):
        return None
    return default


class Timeout:
    """Fail an op with ``TemporaryError(reason="Timeout")`` when it runs longer than allowed.

    ``seconds`` is the default for every non-streaming op (``None``: no default);
    ``per_kind`` maps op kinds to their own limit (``None`` there means unbounded).
    """

    __slots__ = ("per_kind", "seconds")

    def __init__(
        self, seconds: float | None = 30.0, *, per_kind: Mapping[str, float | None] | None = None
    ) -> None:
        self.seconds = seconds
        self.per_kind: dict[str, float | None] = dict(per_kind or {})

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        seconds = timeout_for(op, self.seconds, self.per_kind)
        if seconds is None:
            return await call_next(op)
        with anyio.move_on_after(seconds) as scope:
            return await call_next(op)
        if scope.cancelled_caught:
            raise TemporaryError(f"{op.kind} timed out after {seconds:g}s", reason="Timeout")
        raise AssertionError("unreachable: the op neither returned nor timed out")

    def __repr__(self) -> str:
        return f"Timeout({self.seconds}, per_kind={self.per_kind!r})"


__all__ = ["STREAMING_KINDS", "Timeout", "is_streaming", "timeout_for"]
