"""Pure: container statuses → pod phase and conditions, as the kubelet computes them.

Mirrors the kubelet's ``getPhase`` and its condition generators (``Initialized``,
``ContainersReady``, ``Ready``) over plain ``ContainerStatus`` dicts, with sidecar (restartable
init) containers taken into account.

>>> running = {"name": "app", "state": {"running": {}}, "ready": True, "started": True}
>>> spec = {"containers": [{"name": "app"}], "restartPolicy": "Always"}
>>> pod_phase(spec, [], [running])
'Running'
>>> done = {"name": "app", "state": {"terminated": {"exitCode": 0}}, "ready": False}
>>> pod_phase(dict(spec, restartPolicy="Never"), [], [done])
'Succeeded'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Status = Mapping[str, Any]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """A restartable init container (``restartPolicy: Always`` on an init container)."""
    return container.get("restartPolicy") == "Always"


def _find(statuses: Sequence[Status], name: str) -> Status | None:
    for st in statuses:
        if st.get("name") == name:
            return st
    return None


def _state(st: Status) -> tuple[str, Mapping[str, Any]]:
    state = st.get("state") or {}
    for key in ("running", "terminated", "waiting"):
        if state.get(key) is not None:
            return key, state[key]
    return "", {}


def _last_terminated(st: Status) -> Mapping[str, Any] | None:
    last = (st.get("lastState") or {}).get("terminated")
    return last if last else None


def any_regular_started(spec: Mapping[str, Any], statuses: Sequence[Status]) -> bool:
    """Whether any regular container has ever started (running, terminated or restarted)."""
    for c in spec.get("containers") or []:
        st = _find(statuses, c.get("name", ""))
        if st is None:
            continue
        kind, _ = _state(st)
        if kind in ("running", "terminated") or _last_terminated(st) is not None:
            return True
    return False


def pod_phase(
    spec: Mapping[str, Any], init_statuses: Sequence[Status], statuses: Sequence[Status]
) -> str:
    """The pod phase the kubelet would report for these container statuses."""
    policy = spec.get("restartPolicy") or "Always"
    pending_init = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or []:
        st = _find(init_statuses, c.get("name", ""))
        kind, detail = _state(st) if st is not None else ("", {})
        if is_sidecar(c):
            if kind == "running":
                running += 1
                if not (st or {}).get("started"):
                    pending_init += 1
            elif kind == "terminated" or (
                st is not None and kind == "waiting" and _last_terminated(st) is not None
            ):
                pass  # ended sidecars do not hold the pod back
            else:
                pending_init += 1
            continue
        if kind == "running" or st is None or not kind:
            pending_init += 1
        elif kind == "terminated":
            if detail.get("exitCode", 0) != 0:
                failed_init += 1
        else:  # waiting
            last = _last_terminated(st)
            if last is not None:
                if last.get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
    for c in spec.get("containers") or []:
        st = _find(statuses, c.get("name", ""))
        if st is None:
            unknown += 1
            continue
        kind, detail = _state(st)
        if kind == "running":
            running += 1
        elif kind == "terminated":
            stopped += 1
            if detail.get("exitCode", 0) == 0:
                succeeded += 1
        elif kind == "waiting":
            if _last_terminated(st) is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0 and not any_regular_started(spec, statuses):
        return "Pending"
    if waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    ctype: str,
    ok: bool,
    now: str,
    previous: Mapping[str, Mapping[str, Any]],
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since or now,
    }
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def pod_conditions(
    spec: Mapping[str, Any],
    phase: str,
    init_statuses: Sequence[Status],
    statuses: Sequence[Status],
    *,
    now: str,
    previous: Sequence[Mapping[str, Any]] = (),
    gates: Mapping[str, bool] | None = None,
) -> list[dict[str, Any]]:
    """``PodReadyToStartContainers``, ``Initialized``, ``Ready``, ``ContainersReady``,
    ``PodScheduled``; transition times are kept from ``previous`` while a status holds.
    """
    prev = {c.get("type", ""): c for c in previous}
    incomplete = []
    for c in spec.get("initContainers") or []:
        st = _find(init_statuses, c.get("name", ""))
        if is_sidecar(c):
            if st is None or not st.get("started"):
                incomplete.append(c.get("name", ""))
            continue
        kind, detail = _state(st) if st is not None else ("", {})
        if not (kind == "terminated" and detail.get("exitCode", 0) == 0):
            incomplete.append(c.get("name", ""))
    initialized = not incomplete or any_regular_started(spec, statuses)
    unready = [
        c.get("name", "")
        for c in spec.get("initContainers") or []
        if is_sidecar(c) and not (_find(init_statuses, c.get("name", "")) or {}).get("ready")
    ]
    unready += [
        c.get("name", "")
        for c in spec.get("containers") or []
        if not (_find(statuses, c.get("name", "")) or {}).get("ready")
    ]
    completed = phase in TERMINAL_PHASES
    containers_ready = not unready and not completed
    gate_names = [g.get("conditionType", "") for g in spec.get("readinessGates") or []]
    gates_ok = all((gates or {}).get(g, False) for g in gate_names)
    names = " ".join(unready)
    if completed:
        reason, message = "PodCompleted", None
    else:
        reason, message = "ContainersNotReady", f"containers with unready status: [{names}]"
    ready_reason, ready_message = reason, message
    if containers_ready and not gates_ok:
        ready_reason = "ReadinessGatesNotReady"
        ready_message = "corresponding condition of pod readiness gate is not true"
    return [
        _condition("PodReadyToStartContainers", not completed, now, prev),
        _condition(
            "Initialized",
            initialized,
            now,
            prev,
            "PodCompleted" if completed else "ContainersNotInitialized",
            None if completed else f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        _condition("Ready", containers_ready and gates_ok, now, prev, ready_reason, ready_message),
        _condition("ContainersReady", containers_ready, now, prev, reason, message),
        _condition("PodScheduled", True, now, prev),
    ]


__all__ = [
    "TERMINAL_PHASES",
    "any_regular_started",
    "is_sidecar",
    "pod_conditions",
    "pod_phase",
]
