"""Deterministic fault injection: latency, errors and hangs per op kind.

For chaos tests and benchmarks: with the same ``seed`` and the same sequence of ops of a kind,
the same faults happen, run after run. Each rule draws from its own seeded random stream, so
the faults of one kind do not depend on how ops of other kinds interleave.

A rule matches an op kind exactly or with ``"*"``; the first matching rule applies. For each
op it may add latency (fixed seconds, or uniform in ``(low, high)``), then hang (sleep until
cancelled, e.g. by :class:`~vkcompose.middlewares.timeout.Timeout`) with ``hang_rate``, then
fail with ``error_rate`` — a :class:`~vkcompose.errors.TemporaryError` or
:class:`~vkcompose.errors.PermanentError` raised before the backend is called, or after it
(``error_after=True``: the backend did the work but the answer is lost — the case that tests
idempotency).

Pure core: :func:`decide` (rule + random stream → :class:`Fault`). Adapter: :class:`Faults`.

>>> import random
>>> rule = FaultRule(kind="pod.create", error_rate=1.0, latency=0.25)
>>> decide(rule, random.Random(0))
Fault(latency=0.25, hang=False, error='temporary')

Usage::

    faults = Faults(seed=42, rules=[
        FaultRule(kind="pod.create", error_rate=0.1, latency=(0.01, 0.05)),
        FaultRule(kind="pod.status", hang_rate=0.01),
    ])
    compose(Retry(), Timeout(5.0), faults, backend=MemoryBackend())
"""

from __future__ import annotations

import random as _random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import anyio
import attrs

from vkcompose.errors import PermanentError, TemporaryError
from vkcompose.ops import Op
from vkcompose.pipeline import Handler

ErrorKind = Literal["temporary", "permanent"]


def _rate(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value!r}")


def _latency(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    low, high = (value, value) if isinstance(value, int | float) else value
    if not 0 <= low <= high:
        raise ValueError(f"latency must be >= 0 (and low <= high), got {value!r}")


@attrs.frozen
class FaultRule:
    """Faults for one op kind (``"*"``: any kind).

    ``latency`` is seconds (fixed) or ``(low, high)`` (uniform); ``error`` picks the error type
    injected with probability ``error_rate``; ``pushback`` becomes ``TemporaryError.delay``.
    """

    kind: str = "*"
    error_rate: float = attrs.field(default=0.0, validator=_rate)
    error: ErrorKind = "temporary"
    error_after: bool = False
    latency: float | tuple[float, float] | None = attrs.field(default=None, validator=_latency)
    hang_rate: float = attrs.field(default=0.0, validator=_rate)
    pushback: float | None = None

    def matches(self, kind: str) -> bool:
        """Whether this rule applies to ops of ``kind``."""
        return self.kind == "*" or self.kind == kind


@attrs.frozen
class Fault:
    """What happens to one op: added latency, a hang, an error (or none of them)."""

    latency: float = 0.0
    hang: bool = False
    error: ErrorKind | None = None


NO_FAULT = Fault()
"""The fault that changes nothing (:func:`decide` returns this very object)."""


def decide(rule: FaultRule, rng: _random.Random) -> Fault:
    """Draw the fault for one op. Always consumes three draws, so a stream stays aligned."""
    u_latency, u_hang, u_error = rng.random(), rng.random(), rng.random()
    latency = 0.0
    if isinstance(rule.latency, int | float):
        latency = float(rule.latency)
    elif rule.latency is not None:
        low, high = rule.latency
        latency = low + (high - low) * u_latency
    hang = u_hang < rule.hang_rate
    error = rule.error if u_error < rule.error_rate else None
    if latency == 0.0 and not hang and error is None:
        return NO_FAULT
    return Fault(latency=latency, hang=hang, error=error)


class Faults:
    """Inject the faults ``rules`` describe (see the module docs).

    ``injected`` counts what was injected per ``(kind, "latency" | "hang" | "error")``.
    ``sleep`` (used for latency) is injectable for tests; hangs always wait for cancellation.
    """

    __slots__ = ("_streams", "injected", "rules", "seed", "sleep")

    def __init__(
        self,
        rules: Iterable[FaultRule] = (),
        *,
        seed: int = 0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.rules = tuple(rules)
        self.seed = seed
        self.sleep = sleep
        self._streams = [
            _random.Random(f"vkcompose-faults:{seed}:{i}:{rule.kind}")
            for i, rule in enumerate(self.rules)
        ]
        self.injected: Counter[tuple[str, str]] = Counter()

    def fault_for(self, kind: str) -> Fault:
        """Draw the fault for the next op of ``kind`` (advances that rule's stream)."""
        for rule, rng in zip(self.rules, self._streams, strict=True):
            if rule.matches(kind):
                return decide(rule, rng)
        return NO_FAULT

    def _error(self, op: Op, fault: Fault) -> Exception:
        self.injected[(op.kind, "error")] += 1
        message = f"injected fault: {op.kind} failed"
        if fault.error == "permanent":
            return PermanentError(message, reason="InjectedFault")
        rule = next(r for r in self.rules if r.matches(op.kind))
        return TemporaryError(message, delay=rule.pushback, reason="InjectedFault")

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        fault = self.fault_for(op.kind)
        if fault is NO_FAULT:
            return await call_next(op)
        if fault.latency > 0:
            self.injected[(op.kind, "latency")] += 1
            await self.sleep(fault.latency)
        if fault.hang:
            self.injected[(op.kind, "hang")] += 1
            await anyio.sleep_forever()
        if fault.error is None:
            return await call_next(op)
        rule = next(r for r in self.rules if r.matches(op.kind))
        if rule.error_after:
            await call_next(op)
        raise self._error(op, fault)

    def __repr__(self) -> str:
        return f"Faults(seed={self.seed}, rules={list(self.rules)!r})"


__all__ = ["NO_FAULT", "ErrorKind", "Fault", "FaultRule", "Faults", "decide"]
