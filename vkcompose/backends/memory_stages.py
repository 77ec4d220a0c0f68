"""The simulated pod lifecycle as data: states, stages and per-pod annotation overrides.

In the spirit of kwok's Stages, the simulated backend's behaviour is a table. Each
:class:`Stage` moves a pod from one state to the next after a delay (plus jitter); pod
annotations under ``sim.vkcompose.io/`` override the delays and the outcome per pod::

    metadata:
      annotations:
        sim.vkcompose.io/start-delay: "2.5"     # seconds in ContainerCreating
        sim.vkcompose.io/run-duration: "10"     # containers exit after 10 s ...
        sim.vkcompose.io/exit-code: "3"         # ... with exit code 3
        sim.vkcompose.io/crash-loop: "true"     # exit (code 1 by default) and restart, forever
        sim.vkcompose.io/fail-create: "quota exceeded"   # create fails with this message
        sim.vkcompose.io/fail-create-times: "2"          # ... only the first 2 times

>>> overrides = SimOverrides.from_pod({"metadata": {"annotations": {
...     "sim.vkcompose.io/start-delay": "2", "sim.vkcompose.io/exit-code": "3"}}})
>>> overrides.delay("start-delay", 0.0), overrides.exit_code
(2.0, 3)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from vkcompose.errors import InvalidInput

ANNOTATION_PREFIX = "sim.vkcompose.io/"


class SimState(enum.Enum):
    """Where a simulated pod is in its lifecycle."""

    PENDING = "Pending"
    """Accepted; nothing started yet (phase Pending)."""
    CREATING = "ContainerCreating"
    """Containers being created (waiting: ContainerCreating)."""
    RUNNING = "Running"
    """All containers running and ready."""
    BACKOFF = "CrashLoopBackOff"
    """Containers exited and wait to be restarted (waiting: CrashLoopBackOff)."""
    SUCCEEDED = "Succeeded"
    """All containers exited 0 and will not restart."""
    FAILED = "Failed"
    """Containers exited non-zero (or were killed) and will not restart."""
    TERMINATING = "Terminating"
    """Being stopped after DeletePod; containers still running until the stop delay ends."""


TERMINAL = frozenset({SimState.SUCCEEDED, SimState.FAILED})


@attrs.frozen
class Stage:
    """One transition of the lifecycle table.

    ``delay_key`` names the annotation (``sim.vkcompose.io/<delay_key>``) that overrides the
    stage's ``delay``; ``None`` as delay means the stage only happens when the annotation is set.
    ``jitter`` adds up to that many seconds, drawn from the pod's seeded random generator.
    """

    name: str
    source: SimState
    target: SimState
    delay_key: str
    delay: float | None = 0.0
    jitter: float = 0.0


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("accept", SimState.PENDING, SimState.CREATING, "accept-delay", 0.0),
    Stage("start", SimState.CREATING, SimState.RUNNING, "start-delay", 0.0),
    # RUNNING → SUCCEEDED/FAILED/BACKOFF: the target is decided by exit code and restartPolicy.
    Stage("exit", SimState.RUNNING, SimState.SUCCEEDED, "run-duration", None),
    # BACKOFF → RUNNING: the delay is the kubelet's crash-loop back-off, see backoff_delay().
    Stage("restart", SimState.BACKOFF, SimState.RUNNING, "restart-delay", None),
    Stage("stop", SimState.TERMINATING, SimState.SUCCEEDED, "stop-delay", 0.0),
)
"""The default lifecycle: Pending → ContainerCreating → Running [→ exit] ; delete → stop."""


def _number(annotations: Mapping[str, str], key: str) -> float | None:
    raw = annotations.get(ANNOTATION_PREFIX + key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(
            f"annotation {ANNOTATION_PREFIX}{key}: {raw!r} is not a number of seconds"
        ) from None
    if value < 0:
        raise InvalidInput(f"annotation {ANNOTATION_PREFIX}{key}: must not be negative")
    return value


@attrs.frozen
class SimOverrides:
    """The ``sim.vkcompose.io/*`` annotations of one pod, parsed and validated."""

    delays: Mapping[str, float] = attrs.field(factory=dict)
    exit_code: int | None = None
    crash_loop: bool = False
    fail_create: str | None = None
    fail_create_times: int | None = None

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> SimOverrides:
        """Parse a pod's annotations; bad values raise :class:`InvalidInput` naming the key."""
        annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
        if not any(key.startswith(ANNOTATION_PREFIX) for key in annotations):
            return _NO_OVERRIDES
        delays = {}
        for stage in DEFAULT_STAGES:
            value = _number(annotations, stage.delay_key)
            if value is not None:
                delays[stage.delay_key] = value
        exit_code = None
        raw_exit = annotations.get(ANNOTATION_PREFIX + "exit-code")
        if raw_exit is not None:
            try:
                exit_code = int(raw_exit)
            except ValueError:
                raise InvalidInput(
                    f"annotation {ANNOTATION_PREFIX}exit-code: {raw_exit!r} is not an integer"
                ) from None
        times = _number(annotations, "fail-create-times")
        return cls(
            delays=delays,
            exit_code=exit_code,
            crash_loop=annotations.get(ANNOTATION_PREFIX + "crash-loop", "").lower() == "true",
            fail_create=annotations.get(ANNOTATION_PREFIX + "fail-create"),
            fail_create_times=None if times is None else int(times),
        )

    def delay(self, key: str, default: float | None) -> float | None:
        """The overridden delay for ``key``, else ``default``."""
        return self.delays.get(key, default)


def backoff_delay(restarts: int, base: float, cap: float) -> float:
    """The kubelet's crash-loop back-off: ``base`` doubling per restart, capped at ``cap``.

    >>> [backoff_delay(n, 10, 300) for n in (1, 2, 3, 6, 7)]
    [10.0, 20.0, 40.0, 300.0, 300.0]
    """
    exponent: int = max(restarts - 1, 0)
    return float(min(base * (1 << exponent), cap))


__all__ = [
    "ANNOTATION_PREFIX",
    "DEFAULT_STAGES",
    "TERMINAL",
    "SimOverrides",
    "SimState",
    "Stage",
    "backoff_delay",
]


_NO_OVERRIDES = SimOverrides()
"""What a pod without ``sim.vkcompose.io/*`` annotations gets (shared: nothing mutates it)."""
