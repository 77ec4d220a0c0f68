"""Server-side ``meta.k8s.io/v1`` Table responses, so ``kubectl get`` prints normal columns.

The columns and cells follow kube-apiserver's printers
(``pkg/printers/internalversion/printers.go``): pods (READY, STATUS computed as kubectl shows
it, RESTARTS with "(5m ago)", AGE; IP, NODE, NOMINATED NODE, READINESS GATES at priority 1),
nodes, namespaces, configmaps, secrets, services, serviceaccounts, events, leases, and a
NAME/AGE fallback. Ages are rendered like ``duration.HumanDuration``. Like kube-apiserver,
the wide (priority 1) columns are always present; kubectl shows them with ``-o wide``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["human_duration", "to_table"]

Row = list[Any]
Column = dict[str, Any]

_NAME_DOC: Final = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC: Final = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#metadata"
)


def _col(name: str, description: str, *, type_: str = "string", fmt: str = "",
         priority: int = 0) -> Column:  # fmt: skip
    return {
        "name": name,
        "type": type_,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME_COL: Final = _col("Name", _NAME_DOC, fmt="name")
_AGE_COL: Final = _col("Age", _AGE_DOC)


# --------------------------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages (``k8s.io/apimachinery/pkg/util/duration``):
    ``5s``, ``3m20s``, ``15m``, ``5h3m``, ``20h``, ``2d3h``, ``30d``, ``2y45d``, ``9y``."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _since(value: Any, now: datetime) -> str:
    # translateTimestampSince: "<unknown>" for a zero/absent timestamp.
    t = _parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


# --------------------------------------------------------------------------------------------
# small accessors
# --------------------------------------------------------------------------------------------


def _d(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _s(v: Any) -> str:
    return v if isinstance(v, str) else "" if v is None else str(v)


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _d(obj.get("metadata"))


def _name(obj: Mapping[str, Any]) -> str:
    return _s(_meta(obj).get("name"))


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    return _since(_meta(obj).get("creationTimestamp"), now)


# --------------------------------------------------------------------------------------------
# pods
# --------------------------------------------------------------------------------------------

_POD_COLUMNS: Final = [
    _NAME_COL,
    _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "The aggregate status of the containers in this pod."),
    _col(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last "
        "container in this pod has restarted.",
    ),
    _AGE_COL,
    _col("IP", "IP address allocated to the pod. Routable at least within the cluster.",
         priority=1),
    _col("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
    _col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods "
         "on the node.", priority=1),
    _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
         "readiness.", priority=1),
]  # fmt: skip


def _condition_true(status: Mapping[str, Any], type_: str) -> bool:
    return any(
        _d(c).get("type") == type_ and _d(c).get("status") == "True"
        for c in _l(status.get("conditions"))
    )


def _pod_row(pod: Mapping[str, Any], now: datetime) -> tuple[Row, list[dict[str, str]]]:
    spec, status, meta = _d(pod.get("spec")), _d(pod.get("status")), _meta(pod)
    restarts = 0
    sidecar_restarts = 0
    containers = _l(spec.get("containers"))
    total = len(containers)
    ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = _s(status.get("phase"))
    reason = _s(status.get("reason")) or phase
    for cond in _l(status.get("conditions")):
        c = _d(cond)
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    conditions: list[dict[str, str]] = []
    if phase == "Succeeded":
        conditions = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                       "message": "The pod has completed successfully."}]  # fmt: skip
    elif phase == "Failed":
        conditions = [{"type": "Completed", "status": "True", "reason": "Failed",
                       "message": "The pod failed."}]  # fmt: skip

    init_specs = {_s(_d(c).get("name")): _d(c) for c in _l(spec.get("initContainers"))}
    init_count = len(init_specs)
    for c in init_specs.values():
        if c.get("restartPolicy") == "Always":
            total += 1

    def later(a: datetime | None, b: datetime | None) -> datetime | None:
        if b is None:
            return a
        return b if a is None or b > a else a

    initializing = False
    for i, raw in enumerate(_l(status.get("initContainerStatuses"))):
        cs = _d(raw)
        state = _d(cs.get("state"))
        terminated = _d(state.get("terminated")) if state.get("terminated") else None
        waiting = _d(state.get("waiting")) if state.get("waiting") else None
        count = _int(cs.get("restartCount"))
        restarts += count
        finished = _parse_time(_d(_d(cs.get("lastState")).get("terminated")).get("finishedAt"))
        last_restart = later(last_restart, finished)
        sidecar = init_specs.get(_s(cs.get("name")), {}).get("restartPolicy") == "Always"
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = later(last_sidecar_restart, finished)
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if not terminated.get("reason"):
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Init:Signal:{signal}"
                    if signal
                    else f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
                )
            else:
                reason = "Init:" + _s(terminated.get("reason"))
        elif (
            waiting is not None
            and waiting.get("reason")
            and (waiting.get("reason") != "PodInitializing")
        ):
            reason = "Init:" + _s(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{init_count}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for raw in reversed(_l(status.get("containerStatuses"))):
            cs = _d(raw)
            state = _d(cs.get("state"))
            restarts += _int(cs.get("restartCount"))
            finished = _parse_time(_d(_d(cs.get("lastState")).get("terminated")).get("finishedAt"))
            last_restart = later(last_restart, finished)
            waiting = _d(state.get("waiting")) if state.get("waiting") else None
            terminated = _d(state.get("terminated")) if state.get("terminated") else None
            if waiting is not None and waiting.get("reason"):
                reason = _s(waiting.get("reason"))
            elif terminated is not None and terminated.get("reason"):
                reason = _s(terminated.get("reason"))
            elif terminated is not None:
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Signal:{signal}" if signal else f"ExitCode:{_int(terminated.get('exitCode'))}"
                )
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = _l(status.get("podIPs"))
    ip = _s(_d(pod_ips[0]).get("ip")) if pod_ips else ""
    gates = _l(spec.get("readinessGates"))
    gates_cell = "<none>"
    if gates:
        by_type: dict[str, str] = {}
        for cond in _l(status.get("conditions")):
            c = _d(cond)
            by_type.setdefault(_s(c.get("type")), _s(c.get("status")))
        true = sum(1 for g in gates if by_type.get(_s(_d(g).get("conditionType"))) == "True")
        gates_cell = f"{true}/{len(gates)}"
    row: Row = [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(pod, now),
        ip or "<none>",
        _s(spec.get("nodeName")) or "<none>",
        _s(status.get("nominatedNodeName")) or "<none>",
        gates_cell,
    ]
    return row, conditions


# --------------------------------------------------------------------------------------------
# nodes
# --------------------------------------------------------------------------------------------

_NODE_COLUMNS: Final = [
    _NAME_COL,
    _col("Status", "The status of the node"),
    _col("Roles", "The roles of the node"),
    _AGE_COL,
    _col("Version", "Kubelet Version reported by the node."),
    _col("Internal-IP", "List of addresses reachable to the node.", priority=1),
    _col("External-IP", "List of addresses reachable to the node.", priority=1),
    _col("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian "
         "GNU/Linux 7 (wheezy)).", priority=1),
    _col("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. "
         "3.16.0-0.bpo.4-amd64).", priority=1),
    _col("Container-Runtime", "ContainerRuntime Version reported by the node through runtime "
         "remote API (e.g. containerd://1.4.2).", priority=1),
]  # fmt: skip


def _node_roles(labels: Mapping[str, Any]) -> list[str]:
    roles: set[str] = set()
    for k, v in labels.items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(_s(v))
    return sorted(roles)


def _node_address(status: Mapping[str, Any], type_: str) -> str:
    for a in _l(status.get("addresses")):
        if _d(a).get("type") == type_:
            return _s(_d(a).get("address"))
    return "<none>"


def _node_row(node: Mapping[str, Any], now: datetime) -> Row:
    spec, status = _d(node.get("spec")), _d(node.get("status"))
    parts: list[str] = []
    for cond in _l(status.get("conditions")):
        c = _d(cond)
        if c.get("type") == "Ready":
            parts = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not parts:
        parts = ["Unknown"]
    if spec.get("unschedulable"):
        parts.append("SchedulingDisabled")
    info = _d(status.get("nodeInfo"))
    roles = ",".join(_node_roles(_d(_meta(node).get("labels"))))
    return [
        _name(node),
        ",".join(parts),
        roles or "<none>",
        _age(node, now),
        _s(info.get("kubeletVersion")),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        _s(info.get("osImage")) or "<unknown>",
        _s(info.get("kernelVersion")) or "<unknown>",
        _s(info.get("containerRuntimeVersion")) or "<unknown>",
    ]


# --------------------------------------------------------------------------------------------
# other kinds
# --------------------------------------------------------------------------------------------

_NAMESPACE_COLUMNS: Final = [
    _NAME_COL,
    _col("Status", "The status of the namespace"),
    _AGE_COL,
]
_CONFIGMAP_COLUMNS: Final = [
    _NAME_COL,
    _col("Data", "Data contains the configuration data.", type_="integer"),
    _AGE_COL,
]
_SECRET_COLUMNS: Final = [
    _NAME_COL,
    _col("Type", "Used to facilitate programmatic handling of secret data."),
    _col("Data", "Data contains the secret data.", type_="integer"),
    _AGE_COL,
]
_SERVICE_COLUMNS: Final = [
    _NAME_COL,
    _col("Type", "type determines how the Service is exposed."),
    _col("Cluster-IP", "clusterIP is the IP address of the service."),
    _col("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
         "cluster will also accept traffic for this service."),
    _col("Port(s)", "The list of ports that are exposed by this service."),
    _AGE_COL,
    _col("Selector", "Route service traffic to pods with label keys and values matching "
         "this selector.", priority=1),
]  # fmt: skip
_SERVICEACCOUNT_COLUMNS: Final = [
    _NAME_COL,
    _col("Secrets", "Secrets is a list of the secrets in the same namespace that pods "
         "running using this ServiceAccount are allowed to use.", type_="integer"),
    _AGE_COL,
]  # fmt: skip
_EVENT_COLUMNS: Final = [
    _col("Last Seen", "The time at which the most recent occurrence of this event was "
         "recorded."),
    _col("Type", "Type of this event (Normal, Warning), new types could be added in the "
         "future"),
    _col("Reason", "This should be a short, machine understandable string that gives the "
         "reason for the transition into the object's current status."),
    _col("Object", "The object that this event is about."),
    _col("Subobject", "If referring to a piece of an object instead of an entire object, "
         "this string should contain a valid JSON/Go field access statement.", priority=1),
    _col("Source", "The component reporting this event.", priority=1),
    _col("Message", "A human-readable description of the status of this operation."),
    _col("First Seen", "The time at which the event was first recorded.", priority=1),
    _col("Count", "The number of times this event has occurred.", priority=1),
    _col("Name", _NAME_DOC, fmt="name", priority=1),
]  # fmt: skip
_LEASE_COLUMNS: Final = [
    _NAME_COL,
    _col("Holder", "holderIdentity contains the identity of the holder of a current lease."),
    _AGE_COL,
]
_GENERIC_COLUMNS: Final = [_NAME_COL, _AGE_COL]


def _namespace_row(obj: Mapping[str, Any], now: datetime) -> Row:
    return [_name(obj), _s(_d(obj.get("status")).get("phase")), _age(obj, now)]


def _configmap_row(obj: Mapping[str, Any], now: datetime) -> Row:
    count = len(_d(obj.get("data"))) + len(_d(obj.get("binaryData")))
    return [_name(obj), count, _age(obj, now)]


def _secret_row(obj: Mapping[str, Any], now: datetime) -> Row:
    return [_name(obj), _s(obj.get("type")), len(_d(obj.get("data"))), _age(obj, now)]


def _port_string(ports: list[Any]) -> str:
    out = []
    for raw in ports:
        p = _d(raw)
        proto = _s(p.get("protocol")) or "TCP"
        node_port = _int(p.get("nodePort"))
        if node_port > 0:
            out.append(f"{_int(p.get('port'))}:{node_port}/{proto}")
        else:
            out.append(f"{_int(p.get('port'))}/{proto}")
    return ",".join(out)


def _service_external_ip(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    stype = _s(spec.get("type")) or "ClusterIP"
    external = [_s(x) for x in _l(spec.get("externalIPs"))]
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if stype == "LoadBalancer":
        ingress = _l(_d(status.get("loadBalancer")).get("ingress"))
        lb = [_s(_d(i).get("ip")) or _s(_d(i).get("hostname")) for i in ingress]
        lb = [x for x in lb if x]
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if stype == "ExternalName":
        return _s(spec.get("externalName"))
    return "<unknown>"


def _service_row(obj: Mapping[str, Any], now: datetime) -> Row:
    spec, status = _d(obj.get("spec")), _d(obj.get("status"))
    cluster_ips = _l(spec.get("clusterIPs"))
    cluster_ip = _s(cluster_ips[0]) if cluster_ips else _s(spec.get("clusterIP"))
    selector = _d(spec.get("selector"))
    return [
        _name(obj),
        _s(spec.get("type")) or "ClusterIP",
        cluster_ip or "<none>",
        _service_external_ip(spec, status),
        _port_string(_l(spec.get("ports"))) or "<none>",
        _age(obj, now),
        ",".join(f"{k}={_s(v)}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _serviceaccount_row(obj: Mapping[str, Any], now: datetime) -> Row:
    return [_name(obj), len(_l(obj.get("secrets"))), _age(obj, now)]


def _event_row(obj: Mapping[str, Any], now: datetime) -> Row:
    first = _since(obj.get("firstTimestamp"), now)
    if _parse_time(obj.get("firstTimestamp")) is None:
        first = _since(obj.get("eventTime"), now)
    last = _since(obj.get("lastTimestamp"), now)
    if _parse_time(obj.get("lastTimestamp")) is None:
        last = first
    count = _int(obj.get("count"))
    series = obj.get("series")
    if isinstance(series, Mapping):
        last = _since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1
    involved = _d(obj.get("involvedObject"))
    kind = _s(involved.get("kind")).lower()
    target = f"{kind}/{_s(involved.get('name'))}" if involved.get("name") else kind
    source = _d(obj.get("source"))
    component = _s(source.get("component")) or _s(obj.get("reportingComponent"))
    instance = _s(source.get("host")) or _s(obj.get("reportingInstance"))
    return [
        last,
        _s(obj.get("type")),
        _s(obj.get("reason")),
        target,
        _s(involved.get("fieldPath")),
        f"{component}, {instance}" if instance else component,
        _s(obj.get("message")).strip(),
        first,
        count,
        _name(obj),
    ]


def _lease_row(obj: Mapping[str, Any], now: datetime) -> Row:
    holder = _d(obj.get("spec")).get("holderIdentity")
    return [_name(obj), _s(holder) if holder is not None else "<unknown>", _age(obj, now)]


def _generic_row(obj: Mapping[str, Any], now: datetime) -> Row:
    return [_name(obj), _age(obj, now)]


_PRINTERS: Final[dict[str, tuple[list[Column], Callable[[Mapping[str, Any], datetime], Row]]]] = {
    "Node": (_NODE_COLUMNS, _node_row),
    "Namespace": (_NAMESPACE_COLUMNS, _namespace_row),
    "ConfigMap": (_CONFIGMAP_COLUMNS, _configmap_row),
    "Secret": (_SECRET_COLUMNS, _secret_row),
    "Service": (_SERVICE_COLUMNS, _service_row),
    "ServiceAccount": (_SERVICEACCOUNT_COLUMNS, _serviceaccount_row),
    "Event": (_EVENT_COLUMNS, _event_row),
    "Lease": (_LEASE_COLUMNS, _lease_row),
}


def _row_object(obj: Mapping[str, Any], include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def to_table(
    kind: str,
    objects: Sequence[Mapping[str, Any]],
    *,
    include_object: str = "Metadata",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Render ``objects`` of ``kind`` as a ``meta.k8s.io/v1`` ``Table``.

    ``include_object`` is the ``includeObject`` query parameter: ``"Metadata"`` (rows carry
    a ``PartialObjectMetadata``), ``"Object"`` (the object itself) or ``"None"``. ``now``
    fixes the clock ages are computed against (defaults to the current UTC time). The
    caller sets ``metadata.resourceVersion``/``continue``.
    """
    if include_object not in ("None", "Metadata", "Object"):
        raise ValueError(f"includeObject: unsupported value {include_object!r}")
    clock = now if now is not None else datetime.now(UTC)
    if clock.tzinfo is None:
        clock = clock.replace(tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    if kind == "Pod":
        columns = _POD_COLUMNS
        for obj in objects:
            cells, conditions = _pod_row(obj, clock)
            row: dict[str, Any] = {"cells": cells, "object": _row_object(obj, include_object)}
            if conditions:
                row["conditions"] = conditions
            rows.append(row)
    else:
        columns, printer = _PRINTERS.get(kind, (_GENERIC_COLUMNS, _generic_row))
        for obj in objects:
            rows.append({"cells": printer(obj, clock), "object": _row_object(obj, include_object)})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [dict(c) for c in columns],
        "rows": rows,
    }
