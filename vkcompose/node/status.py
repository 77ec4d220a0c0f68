"""Pure pod-status logic: what to write to ``pods/<name>/status`` and whether anything changed.

The kubelet owns a pod's status, but not all of it: other components add conditions (readiness
gates) and the API server sets ``qosClass``. So the controller writes a *patch* of the fields it
owns, computed here:

* :func:`desired_status` completes a backend's status (host IPs, pod IPs, start time, the four
  standard conditions with stable ``lastTransitionTime``);
* :func:`failure_status` is the status of a pod the backend refused (``ProviderFailed`` or a
  container-level reason such as ``CreateContainerConfigError``);
* :func:`status_patch` diffs the desired status against the API's and returns the minimal patch
  (``None`` when nothing changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from vkcompose.podspec import JSON, Pod

PROVIDER_FAILED: Final = "ProviderFailed"

OWNED_FIELDS: Final = (
    "phase",
    "reason",
    "message",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "initContainerStatuses",
    "containerStatuses",
    "ephemeralContainerStatuses",
)
"""Top-level status fields the node controller owns (besides its conditions)."""

STANDARD_CONDITIONS: Final = (
    "PodReadyToStartContainers",
    "PodScheduled",
    "Initialized",
    "ContainersReady",
    "Ready",
)

TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})

__all__ = [
    "OWNED_FIELDS",
    "PROVIDER_FAILED",
    "STANDARD_CONDITIONS",
    "TERMINAL_PHASES",
    "all_containers_terminated",
    "apply_readiness_gates",
    "desired_status",
    "failure_status",
    "gate_statuses",
    "is_terminal",
    "lost_run_once_status",
    "merge_conditions",
    "newly_running",
    "ran_once",
    "status_patch",
    "still_starting",
]


def is_terminal(pod: Pod | None) -> bool:
    """Whether the pod's API phase is Succeeded or Failed."""
    if not pod:
        return False
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def _names(spec: Mapping[str, Any], field: str) -> list[str]:
    return [c.get("name", "") for c in spec.get(field) or []]


def all_containers_terminated(status: Mapping[str, Any] | None) -> bool:
    """Whether no container of ``status`` is running or waiting to run.

    >>> all_containers_terminated({"phase": "Running", "containerStatuses": [
    ...     {"name": "a", "state": {"terminated": {"exitCode": 0}}}]})
    True
    >>> all_containers_terminated({"phase": "Running", "containerStatuses": [
    ...     {"name": "a", "state": {"running": {}}}]})
    False
    """
    if not status:
        return True
    if status.get("phase") in TERMINAL_PHASES:
        return True
    statuses = list(status.get("containerStatuses") or []) + list(
        status.get("initContainerStatuses") or []
    )
    return all("terminated" in (cs.get("state") or {}) for cs in statuses) and bool(statuses)


def still_starting(status: Mapping[str, Any]) -> bool:
    """Whether ``status`` only says the pod is being started: phase Pending, no reason, and
    every container (if any is listed) waiting in ``ContainerCreating``.

    >>> still_starting({"phase": "Pending"})
    True
    >>> still_starting({"phase": "Pending", "containerStatuses": [
    ...     {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]})
    True
    >>> still_starting({"phase": "Pending", "containerStatuses": [
    ...     {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]})
    False
    >>> still_starting({"phase": "Running"})
    False
    """
    if status.get("phase", "Pending") != "Pending" or status.get("reason"):
        return False
    for field in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(field) or []:
            waiting = (cs.get("state") or {}).get("waiting")
            if waiting is None or waiting.get("reason") != "ContainerCreating":
                return False
    return True


def newly_running(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """Names of containers running in ``new`` that were not running in ``old``."""
    before = {
        cs.get("name")
        for cs in (old or {}).get("containerStatuses") or []
        if "running" in (cs.get("state") or {})
    }
    return [
        cs.get("name", "")
        for cs in new.get("containerStatuses") or []
        if "running" in (cs.get("state") or {}) and cs.get("name") not in before
    ]


def merge_conditions(
    old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]], now: str
) -> list[JSON]:
    """``new`` conditions, keeping ``lastTransitionTime`` of those whose status did not change.

    >>> merge_conditions([{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}],
    ...                  [{"type": "Ready", "status": "True"}], "t1")
    [{'type': 'Ready', 'status': 'True', 'lastTransitionTime': 't0'}]
    """
    previous = {c.get("type"): c for c in old}
    merged: list[JSON] = []
    for cond in new:
        c = dict(cond)
        prev = previous.get(c.get("type"))
        if prev is not None and prev.get("status") == c.get("status"):
            c["lastTransitionTime"] = prev.get("lastTransitionTime") or c.get(
                "lastTransitionTime", now
            )
        elif not c.get("lastTransitionTime"):
            c["lastTransitionTime"] = now
        merged.append(c)
    return merged


def _cond(ctype: str, ok: bool, reason: str | None = None) -> JSON:
    c: JSON = {"type": ctype, "status": "True" if ok else "False"}
    if reason and not ok:
        c["reason"] = reason
    return c


def _standard_conditions(pod: Pod, status: Mapping[str, Any]) -> list[JSON]:
    spec = pod.get("spec") or {}
    phase = status.get("phase") or "Pending"
    init = {cs.get("name"): cs for cs in status.get("initContainerStatuses") or []}
    init_done = all(
        ((init.get(n) or {}).get("state") or {}).get("terminated", {}).get("exitCode") == 0
        for n in _names(spec, "initContainers")
    ) or phase in ("Running", "Succeeded")
    main = {cs.get("name"): cs for cs in status.get("containerStatuses") or []}
    names = _names(spec, "containers")
    ready = bool(names) and all(bool((main.get(n) or {}).get("ready")) for n in names)
    terminal = phase in TERMINAL_PHASES
    sandbox = phase != "Pending" or any(
        "running" in (cs.get("state") or {}) for cs in main.values()
    )
    if terminal:
        ready = False
        sandbox = False
    not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    conds = [
        _cond("PodReadyToStartContainers", sandbox),
        _cond("Initialized", init_done, "ContainersNotInitialized"),
        _cond("Ready", ready, not_ready_reason),
        _cond("ContainersReady", ready, not_ready_reason),
        _cond("PodScheduled", True),
    ]
    return apply_readiness_gates(pod, conds)


def gate_statuses(pod: Pod) -> tuple[str | None, ...]:
    """The status of each readiness gate's condition in the pod's API status (``None``: not
    there); empty for a pod without gates.

    >>> gate_statuses({"spec": {"readinessGates": [{"conditionType": "g"}]},
    ...                "status": {"conditions": [{"type": "g", "status": "True"}]}})
    ('True',)
    """
    gates = (pod.get("spec") or {}).get("readinessGates")
    if not gates:
        return ()
    have = {
        c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []
    }
    return tuple(have.get(g.get("conditionType")) for g in gates)


def apply_readiness_gates(pod: Pod, conditions: list[JSON]) -> list[JSON]:
    """``conditions`` with ``Ready`` as the kubelet computes it for a pod with readiness gates:
    ``ContainersReady`` and every gate's condition (set by others in the API) True.

    >>> pod = {"spec": {"readinessGates": [{"conditionType": "g"}]}}
    >>> [c for c in apply_readiness_gates(pod, [{"type": "ContainersReady", "status": "True"},
    ...     {"type": "Ready", "status": "True"}]) if c["type"] == "Ready"][0]["reason"]
    'ReadinessGatesNotReady'
    """
    gates = [
        g.get("conditionType", "") for g in (pod.get("spec") or {}).get("readinessGates") or []
    ]
    if not gates:
        return conditions
    by_type = {c.get("type"): c for c in conditions}
    containers = by_type.get("ContainersReady") or by_type.get("Ready") or {}
    if containers.get("status") != "True":
        return conditions  # not ready for the containers' sake: that reason stays
    unready = [
        f'corresponding condition of pod readiness gate "{gate}" does not exist.'
        if status is None
        else f'the status of pod readiness gate "{gate}" is not "True", but {status}'
        for gate, status in zip(gates, gate_statuses(pod), strict=True)
        if status != "True"
    ]
    ready: JSON = {"type": "Ready", "status": "True"}
    if unready:  # every gate that holds it back, as the kubelet lists them
        ready = {
            "type": "Ready",
            "status": "False",
            "reason": "ReadinessGatesNotReady",
            "message": ", ".join(unready),
        }
    out = [c for c in conditions if c.get("type") != "Ready"]
    out.append(ready)
    return out


def desired_status(
    pod: Pod,
    backend_status: Mapping[str, Any],
    *,
    host_ips: tuple[str, ...],
    now: str,
    host_network: bool = False,
) -> JSON:
    """The status to write for ``pod`` given what the backend reports.

    Backend fields win; what it leaves out is completed: ``hostIP(s)``, ``podIPs`` from
    ``podIP`` (or the host IPs for host-network pods), ``startTime`` (kept once set), and
    the standard conditions (``PodScheduled``, ``Initialized``, ``ContainersReady``, ``Ready``),
    with ``lastTransitionTime`` kept from the API's status while a condition's value holds.
    """
    current = pod.get("status") or {}
    out: JSON = {k: v for k, v in backend_status.items() if k in OWNED_FIELDS}
    out.setdefault("phase", "Pending")
    if host_ips:
        out.setdefault("hostIP", host_ips[0])
        out.setdefault("hostIPs", [{"ip": ip} for ip in host_ips])
    uses_host_net = host_network or bool((pod.get("spec") or {}).get("hostNetwork"))
    if uses_host_net and host_ips and "podIP" not in out:
        out["podIP"] = host_ips[0]
    if out.get("podIP") and not out.get("podIPs"):
        out["podIPs"] = [{"ip": out["podIP"]}]
    out["startTime"] = current.get("startTime") or backend_status.get("startTime") or now
    ours = backend_status.get("conditions")
    ours = apply_readiness_gates(pod, ours) if ours else _standard_conditions(pod, out)
    out["conditions"] = merge_conditions(current.get("conditions") or [], ours, now)
    return out


def failure_status(
    pod: Pod,
    *,
    reason: str,
    message: str,
    host_ips: tuple[str, ...],
    now: str,
    container_reason: bool = False,
) -> JSON:
    """Status of a pod the backend refused.

    ``container_reason=False``: pod-level ``reason=<reason>`` (``ProviderFailed``) and the
    message; phase ``Failed`` when ``restartPolicy`` is ``Never``, else ``Pending``.
    ``container_reason=True`` (e.g. ``CreateContainerConfigError``): phase ``Pending`` and each
    container ``Waiting`` with that reason and message, as the kubelet reports it.
    """
    spec = pod.get("spec") or {}
    current = pod.get("status") or {}
    out: JSON = {}
    if host_ips:
        out["hostIP"] = host_ips[0]
        out["hostIPs"] = [{"ip": ip} for ip in host_ips]
    out["startTime"] = current.get("startTime") or now
    if container_reason:
        out["phase"] = "Pending"
        waiting = {"waiting": {"reason": reason, "message": message}}
        for field, spec_field in (
            ("initContainerStatuses", "initContainers"),
            ("containerStatuses", "containers"),
        ):
            names = _names(spec, spec_field)
            if names:
                out[field] = [
                    {
                        "name": n,
                        "image": _image(spec, spec_field, n),
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": waiting,
                        "lastState": {},
                    }
                    for n in names
                ]
        base = {**out}
        conds = _standard_conditions(pod, base)
    else:
        never = spec.get("restartPolicy") == "Never"
        out["phase"] = "Failed" if never else "Pending"
        out["reason"] = reason
        out["message"] = message
        conds = _standard_conditions(pod, out)
        for field in ("containerStatuses", "initContainerStatuses"):
            if current.get(field):
                out[field] = current[field]
    out["conditions"] = merge_conditions(current.get("conditions") or [], conds, now)
    return out


LOST_REASON: Final = "ContainerStatusUnknown"
LOST_MESSAGE: Final = "The container could not be located when the pod was terminated"


def ran_once(pod: Pod) -> bool:
    """Whether ``pod`` runs once (``restartPolicy: Never``) and a container of it has started,
    as its API status shows: the kubelet never starts such a pod again.

    >>> ran_once({"spec": {"restartPolicy": "Never"}, "status": {"containerStatuses": [
    ...     {"name": "a", "state": {"running": {"startedAt": "t"}}}]}})
    True
    """
    if (pod.get("spec") or {}).get("restartPolicy") != "Never":
        return False
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(
        "running" in (cs.get("state") or {}) or "terminated" in (cs.get("state") or {})
        for cs in statuses
    )


def lost_run_once_status(pod: Pod, *, now: str) -> JSON:
    """Status of a run-once pod whose containers the backend no longer has, as the kubelet
    writes it: each container not already terminated is terminated with exit code 137 and
    reason ``ContainerStatusUnknown``; phase ``Failed`` (``Succeeded`` if every container had
    exited 0 before)."""
    current = pod.get("status") or {}
    spec = pod.get("spec") or {}
    known = {cs.get("name"): cs for cs in current.get("containerStatuses") or []}
    statuses = []
    for name in _names(spec, "containers"):
        cs = dict(known.get(name) or {"name": name, "image": _image(spec, "containers", name)})
        cs.setdefault("imageID", "")
        cs.setdefault("restartCount", 0)
        state = cs.get("state") or {}
        if "terminated" not in state:
            started = (state.get("running") or {}).get("startedAt")
            terminated: JSON = {
                "exitCode": 137,
                "reason": LOST_REASON,
                "message": LOST_MESSAGE,
                "finishedAt": now,
            }
            if started:
                terminated["startedAt"] = started
            cs["state"] = {"terminated": terminated}
        cs["ready"] = False
        cs["started"] = False
        statuses.append(cs)
    clean = all(cs["state"]["terminated"].get("exitCode") == 0 for cs in statuses)
    out: JSON = {k: v for k, v in current.items() if k not in ("conditions", "containerStatuses")}
    out["phase"] = "Succeeded" if clean else "Failed"
    out["containerStatuses"] = statuses
    out["conditions"] = merge_conditions(
        current.get("conditions") or [], _standard_conditions(pod, out), now
    )
    return out


def _image(spec: Mapping[str, Any], field: str, name: str) -> str:
    for c in spec.get(field) or []:
        if c.get("name") == name:
            return str(c.get("image") or "")
    return ""


_MERGED_BY_IP = frozenset({"podIPs", "hostIPs"})
"""Status lists the API merges by ``ip`` (``patchStrategy:"merge"`` upstream)."""


def status_patch(
    current: Mapping[str, Any] | None, desired: Mapping[str, Any], *, strategic: bool = True
) -> JSON | None:
    """The ``status`` patch turning ``current`` into ``desired`` (``None``: nothing changed).

    Owned fields that changed are set; owned fields ``desired`` lacks are removed (``null``).
    Conditions: with ``strategic=True`` only the changed ones are sent (the server merges them
    by ``type``, keeping conditions others wrote); with a plain merge patch the full list is
    sent — ours plus the current ones of other types.

    >>> status_patch({"phase": "Pending"}, {"phase": "Running"})
    {'phase': 'Running'}
    >>> status_patch({"phase": "Running"}, {"phase": "Running"}) is None
    True
    """
    cur = current or {}
    patch: JSON = {}
    for field in OWNED_FIELDS:
        want = desired.get(field)
        have = cur.get(field)
        if want is None:
            if have is not None:
                patch[field] = None
        elif want != have:
            if strategic and field in _MERGED_BY_IP and want:
                # the server merges these lists by ``ip``: replace them, or old IPs would stay
                patch[field] = [{"$patch": "replace"}, *want]
            else:
                patch[field] = want
    want_conds = list(desired.get("conditions") or [])
    have_conds = {c.get("type"): c for c in cur.get("conditions") or []}
    changed = [c for c in want_conds if _cond_key(have_conds.get(c.get("type"))) != _cond_key(c)]
    if changed:
        if strategic:
            # a strategic merge merges each condition's fields: clear the ones we dropped
            for i, c in enumerate(changed):
                old = have_conds.get(c.get("type")) or {}
                gone = {k: None for k in old if k not in c}
                if gone:
                    changed[i] = {**c, **gone}
            patch["conditions"] = changed
        else:
            ours = {c.get("type") for c in want_conds}
            others = [c for t, c in have_conds.items() if t not in ours]
            patch["conditions"] = want_conds + others
    return patch or None


def _cond_key(c: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if c is None:
        return None
    return (c.get("status"), c.get("reason"), c.get("message"), c.get("lastTransitionTime"))
