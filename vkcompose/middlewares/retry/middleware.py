"""The retry middleware: an adapter over :mod:`.policy` and :mod:`.budget`.

>>> import anyio
>>> from vkcompose.errors import TemporaryError
>>> from vkcompose.ops import ListPods
>>> from vkcompose.pipeline import compose
>>> class Flaky:
...     calls = 0
...     async def list_pods(self):
...         self.calls += 1
...         if self.calls < 3:
...             raise TemporaryError("busy", delay=0.0)
...         return []
>>> anyio.run(compose(Retry(), backend=Flaky()), ListPods())
[]
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from opentelemetry import trace

from vkcompose.middlewares.retry.budget import RetryBudget
from vkcompose.middlewares.retry.policy import RetryPolicy, plan_retry
from vkcompose.ops import CreatePod, Op
from vkcompose.pipeline import Handler

ATTEMPT_EVENT = "vkcompose.retry.attempt"
"""Name of the span event added for every attempt."""


def error_type(error: BaseException) -> str:
    """The ``error.type`` attribute value: the exception's qualified class name."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class Retry:
    """Retry failed operations with full-jitter backoff, a shared budget and one deadline.

    * Only ops whose ``idempotent`` flag is set are retried; ``retry_creates=True`` adds
      :class:`~vkcompose.ops.CreatePod` for backends whose creates are idempotent.
    * ``deadline`` (seconds, default none) bounds all attempts together: the middleware never
      sleeps past it and raises the last error when the next sleep would cross it. Under the
      default clock an enclosing anyio cancel-scope deadline (e.g. an outer ``Timeout``) bounds
      the sleeps too.
    * ``budget`` is shared by every call through this middleware (pass the same
      :class:`RetryBudget` to several pipelines to share it wider).
    * Every attempt adds a ``vkcompose.retry.attempt`` event to the current OpenTelemetry span
      (``vkcompose.retry.attempt``, ``vkcompose.retry.delay``, ``error.type``).

    ``clock``, ``sleep`` and ``random`` are injectable for tests.
    """

    __slots__ = ("_clock", "_random", "_sleep", "budget", "deadline", "policy", "retry_creates")

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        budget: RetryBudget | None = None,
        deadline: float | None = None,
        retry_creates: bool = False,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.budget = budget if budget is not None else RetryBudget(clock=clock)
        self.deadline = deadline
        self.retry_creates = retry_creates
        self._clock = clock
        self._sleep = sleep
        self._random = random

    def retries(self, op: Op) -> bool:
        """Whether this middleware may repeat ``op``."""
        return op.idempotent or (self.retry_creates and isinstance(op, CreatePod))

    def _deadline(self, start: float) -> float:
        deadline = math.inf if self.deadline is None else start + self.deadline
        if self._clock is anyio.current_time:
            deadline = min(deadline, anyio.current_effective_deadline())
        return deadline

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        if not self.retries(op):
            return await call_next(op)
        self.budget.deposit()
        span = trace.get_current_span()
        deadline = self._deadline(self._clock())
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await call_next(op)
            except Exception as error:
                delay = plan_retry(
                    self.policy,
                    attempt=attempt,
                    error=error,
                    now=self._clock(),
                    deadline=deadline,
                    random=self._random,
                )
                retrying = delay is not None and self.budget.withdraw()
                attributes: dict[str, Any] = {
                    "vkcompose.retry.attempt": attempt,
                    "error.type": error_type(error),
                    "vkcompose.retry.outcome": "retry" if retrying else "give_up",
                }
                if retrying and delay is not None:
                    attributes["vkcompose.retry.delay"] = delay
                elif delay is not None:
                    attributes["vkcompose.retry.reason"] = "budget_exhausted"
                span.add_event(ATTEMPT_EVENT, attributes)
                if not retrying or delay is None:
                    raise
                await self._sleep(delay)
            else:
                span.add_event(
                    ATTEMPT_EVENT,
                    {"vkcompose.retry.attempt": attempt, "vkcompose.retry.outcome": "ok"},
                )
                return result

    def __repr__(self) -> str:
        return f"Retry({self.policy!r}, deadline={self.deadline}, budget={self.budget!r})"


__all__ = ["ATTEMPT_EVENT", "Retry", "error_type"]
