"""Compose middlewares in front of a backend.

A :class:`Middleware` is ``async (op, call_next) -> result``. :func:`compose` chains them; the
first listed is outermost, so it sees each op first and each result last. ``call_next`` is a
plain ``await`` (no task hop), so contextvars — and the OpenTelemetry context — set by an outer
middleware are visible all the way down to the backend.

>>> import anyio
>>> from vkcompose.ops import ListPods
>>> class Backend:
...     async def list_pods(self):
...         return []
>>> async def count(op, call_next):
...     result = await call_next(op)
...     return len(result)
>>> anyio.run(compose(count, backend=Backend()), ListPods())
0
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from vkcompose import capabilities
from vkcompose.errors import Unsupported
from vkcompose.ops import Op


class Handler(Protocol):
    """Anything that takes an op and returns its result."""

    def __call__(self, op: Op, /) -> Awaitable[Any]: ...


class Middleware(Protocol):
    """Sees an op, may evolve it, calls ``call_next`` (or not), then sees the result."""

    def __call__(self, op: Op, call_next: Handler, /) -> Awaitable[Any]: ...


def _chain(middleware: Middleware, call_next: Handler) -> Handler:
    # A plain function handing back the middleware's awaitable: no coroutine frame of its own,
    # so a layer costs one coroutine (the middleware's) instead of two.
    def handle(op: Op, /) -> Awaitable[Any]:
        return middleware(op, call_next)

    return handle


class Pipeline:
    """Middlewares composed in front of a backend; call it with an op.

    Build it with :func:`compose`. A pipeline refuses, before any middleware runs, an op whose
    capability the backend lacks (raising :class:`~vkcompose.errors.Unsupported`).
    """

    __slots__ = ("_dispatch", "_head", "backend", "middlewares", "supported")

    def __init__(self, middlewares: Sequence[Middleware], backend: object) -> None:
        self.middlewares: tuple[Middleware, ...] = tuple(middlewares)
        self.backend = backend
        self._dispatch: dict[type[Op], Callable[[Op], Awaitable[Any]]] = (
            capabilities.dispatch_table(backend)
        )
        self.supported: frozenset[type[Op]] = frozenset(self._dispatch)
        head: Handler = self._terminal
        for middleware in reversed(self.middlewares):
            head = _chain(middleware, head)
        self._head = head

    def supports(self, op_type: type[Op]) -> bool:
        """Whether the backend serves ``op_type``."""
        return op_type in self.supported

    def _terminal(self, op: Op, /) -> Awaitable[Any]:
        call = self._dispatch.get(type(op))
        if call is None:
            raise self._unsupported(op)
        return call(op)

    async def __call__(self, op: Op, /) -> Any:
        if type(op) not in self.supported:
            raise self._unsupported(op)
        return await self._head(op)

    def _unsupported(self, op: Op) -> Unsupported:
        return Unsupported(f"backend {type(self.backend).__name__} does not support {op.kind}")

    def __repr__(self) -> str:
        names = ", ".join(type(m).__name__ for m in self.middlewares)
        return f"Pipeline([{names}], backend={type(self.backend).__name__})"


def compose(*middlewares: Middleware, backend: object) -> Pipeline:
    """Put ``middlewares`` in front of ``backend`` (first listed = outermost).

    ``backend`` may itself be a :class:`Pipeline`: ``compose(a, compose(b, backend=x))`` is the
    same pipeline as ``compose(a, b, backend=x)``.
    """
    if isinstance(backend, Pipeline):
        return Pipeline((*middlewares, *backend.middlewares), backend.backend)
    return Pipeline(middlewares, backend)


__all__ = ["Handler", "Middleware", "Pipeline", "compose"]
