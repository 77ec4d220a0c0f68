"""The downward API: pod and container facts as env values and volume file contents.

Pure core first (no vkcompose runtime needed, e.g. from a kopf handler):

* :func:`resolve_downward_env` — one container's ``env`` with every ``valueFrom.fieldRef`` and
  ``valueFrom.resourceFieldRef`` replaced by a literal ``value``;
* :func:`resolve_downward` — a copy of the pod with that done for every container;
* :func:`needs_pod_ips` / :func:`has_downward_env` — whether a pod needs pod IPs / any work;
* :func:`volume_item_value` — the content of one ``downwardAPI`` volume item (labels and
  annotations as sorted ``key="value"`` lines, single fields as plain values).

>>> from vkcompose.ops import NodeInfo
>>> pod = {"metadata": {"name": "web", "namespace": "shop"},
...        "spec": {"nodeName": "vk-1", "containers": [{"name": "app", "env": [
...            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
...            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}
>>> resolve_downward_env(pod, pod["spec"]["containers"][0],
...                      node=NodeInfo(name="vk-1"), pod_ips=["10.1.0.5"])
[{'name': 'POD', 'value': 'web'}, {'name': 'IP', 'value': '10.1.0.5'}]

Resolved values are written *escaped* for ``$(VAR)`` expansion (``$`` → ``$$``): the rewritten
pod means exactly what the original meant, so the later expansion (done by
:class:`~vkcompose.middlewares.config_sources.ResolveConfigSources`, or by a real kubelet if
the pod is forwarded) yields the value itself. Pass ``escape_values=False`` for raw values.

Then the :class:`DownwardAPI` middleware. Pod IPs come from the backend (an
:class:`~vkcompose.ops.AllocatePodIPs` op sent down the rest of the pipeline, served by the
``KnowsPodIPs`` capability), else from the node's addresses for host-network pods; when they
cannot be known the pod fails with ``CreateContainerConfigError`` — never an empty string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vkcompose.errors import InvalidInput, Unsupported
from vkcompose.middlewares.pod_ops import with_pod
from vkcompose.middlewares.secret_report import REFS_KEPT
from vkcompose.ops import AllocatePodIPs, CreatePod, NodeInfo, Op, UpdatePod
from vkcompose.pipeline import Handler
from vkcompose.podspec import Pod
from vkcompose.podspec.expansion import escape
from vkcompose.podspec.fieldpath import (
    ENV_FIELDS,
    METADATA_FIELDS,
    POD_IP_FIELDS,
    FieldPathError,
    field_value,
    resource_value,
    split_subscript,
)

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
CONFIG_ERROR = "CreateContainerConfigError"
"""The container waiting reason the kubelet uses when a container's config cannot be made."""


def _containers(pod: Pod) -> list[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    return [c for key in CONTAINER_LISTS for c in (spec.get(key) or ())]


def _downward_ref(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if entry.get("value"):
        return None  # a literal value wins over valueFrom, as with the kubelet
    value_from = entry.get("valueFrom") or {}
    if value_from.get("fieldRef") is not None or value_from.get("resourceFieldRef") is not None:
        return value_from
    return None


def has_downward_env(pod: Pod) -> bool:
    """Whether any container of ``pod`` has an env ``fieldRef`` or ``resourceFieldRef``."""
    return any(
        _downward_ref(entry) is not None for c in _containers(pod) for entry in c.get("env") or ()
    )


def needs_pod_ips(pod: Pod) -> bool:
    """Whether any env ``fieldRef`` of ``pod`` asks for ``status.podIP`` or ``status.podIPs``."""
    for c in _containers(pod):
        for entry in c.get("env") or ():
            ref = _downward_ref(entry)
            if ref is not None and (ref.get("fieldRef") or {}).get("fieldPath") in POD_IP_FIELDS:
                return True
    return False


def _env_field_value(
    pod: Pod,
    ref: Mapping[str, Any],
    node: NodeInfo | None,
    pod_ips: Sequence[str] | None,
) -> str:
    path = str(ref.get("fieldPath") or "")
    if path not in ENV_FIELDS and split_subscript(path)[1] is None:
        raise FieldPathError(f"field label not supported: {path}")
    if path == "spec.nodeName" and not (pod.get("spec") or {}).get("nodeName") and node:
        return node.name
    return field_value(
        pod,
        path,
        host_ips=node.host_ips if node else (),
        pod_ips=pod_ips,
        api_version=ref.get("apiVersion"),
    )


def resolve_downward_env(
    pod: Pod,
    container: Mapping[str, Any],
    *,
    node: NodeInfo | None = None,
    pod_ips: Sequence[str] | None = None,
    escape_values: bool = True,
) -> list[dict[str, Any]]:
    """``container``'s ``env`` with ``fieldRef``/``resourceFieldRef`` entries made literal.

    Other entries are kept as they are (the same dicts). ``node`` gives the host IPs, the
    allocatable resources that default missing limits and the node name when the pod has none.
    Raises :class:`~vkcompose.podspec.fieldpath.FieldPathError` naming the container and
    variable when a value cannot be resolved.
    """
    return _resolve_env(pod, container, node, pod_ips, escape_values, {})


def _resolve_env(
    pod: Pod,
    container: Mapping[str, Any],
    node: NodeInfo | None,
    pod_ips: Sequence[str] | None,
    escape_values: bool,
    memo: dict[tuple[Any, Any], str],
) -> list[dict[str, Any]]:
    """:func:`resolve_downward_env`; ``memo`` keeps ``fieldRef`` values for the whole pod."""
    out: list[dict[str, Any]] = []
    for entry in container.get("env") or ():
        # inlined _downward_ref (hot): a literal value wins over valueFrom
        if entry.get("value"):
            out.append(entry)
            continue
        ref = entry.get("valueFrom")
        if not ref:
            out.append(entry)
            continue
        field_ref = ref.get("fieldRef")
        if field_ref is None and ref.get("resourceFieldRef") is None:
            out.append(entry)
            continue
        try:
            value = _entry_value(pod, container, ref, node, pod_ips, escape_values, memo)
        except FieldPathError as e:
            raise _wrap(e, container, entry) from None
        out.append({"name": entry["name"], "value": value})
    return out


def _entry_value(
    pod: Pod,
    container: Mapping[str, Any],
    value_from: Mapping[str, Any],
    node: NodeInfo | None,
    pod_ips: Sequence[str] | None,
    escape_values: bool,
    memo: dict[tuple[Any, Any], str],
) -> str:
    """The value of one ``fieldRef`` or ``resourceFieldRef`` ``valueFrom`` of ``container``
    (``FieldPathError`` when it has none)."""
    field_ref = value_from.get("fieldRef")
    if field_ref is not None:
        return _field_ref_value(pod, field_ref, node, pod_ips, escape_values, memo)
    rf = value_from["resourceFieldRef"]
    target: str | Mapping[str, Any] = rf.get("containerName") or container
    value = resource_value(
        pod,
        target,
        str(rf.get("resource") or ""),
        rf.get("divisor"),
        node.allocatable if node else None,
    )
    return escape(value) if escape_values else value


def resolve_downward(
    pod: Pod,
    *,
    node: NodeInfo | None = None,
    pod_ips: Sequence[str] | None = None,
    escape_values: bool = True,
) -> Pod:
    """A copy of ``pod`` with every container's downward API env resolved.

    Containers without downward API env are shared with the input, not copied; the input is
    never modified.
    """
    return _resolve_downward(pod, node, pod_ips, escape_values)


def _resolve_downward(
    pod: Pod,
    node: NodeInfo | None,
    pod_ips: Sequence[str] | None,
    escape_values: bool,
) -> Pod:
    """:func:`resolve_downward`."""
    spec = pod.get("spec") or {}
    new_spec: dict[str, Any] | None = None
    memo: dict[tuple[Any, Any], str] = {}
    for key in CONTAINER_LISTS:
        containers = spec.get(key)
        if not containers:
            continue
        changed = False
        new_list = []
        for c in containers:
            if any(_downward_ref(e) is not None for e in c.get("env") or ()):
                env = _resolve_env(pod, c, node, pod_ips, escape_values, memo)
                new_list.append({**c, "env": env})
                changed = True
            else:
                new_list.append(c)
        if changed:
            new_spec = new_spec if new_spec is not None else dict(spec)
            new_spec[key] = new_list
    if new_spec is None:
        return pod
    return {**pod, "spec": new_spec}


class _Plan:
    """The first pass of :class:`DownwardAPI` over a pod (see :func:`_plan`)."""

    __slots__ = ("containers", "error", "memo", "needs_ips", "pending")

    def __init__(self) -> None:
        # (container list key, index, original container, its new env)
        self.containers: list[tuple[str, int, Mapping[str, Any], list[Any]]] = []
        # pod-IP entries resolved once the IPs are known: (new env, index, fieldRef, container,
        # entry); only those before ``error`` are kept
        self.pending: list[tuple[list[Any], int, Mapping[str, Any], Mapping[str, Any], Any]] = []
        self.error: FieldPathError | None = None
        self.needs_ips = False
        self.memo: dict[tuple[Any, Any], str] = {}


def _wrap(error: FieldPathError, container: Mapping[str, Any], entry: Any) -> FieldPathError:
    return FieldPathError(f'container "{container.get("name")}": env {entry.get("name")}: {error}')


def _field_ref_value(
    pod: Pod,
    field_ref: Mapping[str, Any],
    node: NodeInfo | None,
    pod_ips: Sequence[str] | None,
    escape_values: bool,
    memo: dict[tuple[Any, Any], str],
) -> str:
    path, version = field_ref.get("fieldPath"), field_ref.get("apiVersion")
    key = (path, version)
    cacheable = type(path) is str and (version is None or type(version) is str)
    value = memo.get(key) if cacheable else None
    if value is None:
        getter = _GETTERS.get(key, _UNCOMPILED) if cacheable else None
        if getter is _UNCOMPILED:
            getter = _compile_field(str(path), version)
            if len(_GETTERS) >= _GETTERS_LIMIT:
                _GETTERS.clear()
            _GETTERS[key] = getter
        value = (
            getter(pod.get("metadata") or {})
            if getter is not None
            else _env_field_value(pod, field_ref, node, pod_ips)
        )
        value = escape(value) if escape_values else value
        if cacheable:
            memo[key] = value
    return value


_Getter = Callable[[Mapping[str, Any]], str]
_UNCOMPILED: Any = object()
_GETTERS: dict[tuple[Any, Any], _Getter | None] = {}
"""(fieldPath, apiVersion) → a getter of the value from the pod's metadata, for the paths that
need nothing else; ``None``: use :func:`_env_field_value` (all other paths, and errors)."""
_GETTERS_LIMIT = 1024


def _compile_field(path: str, version: str | None) -> _Getter | None:
    """What :func:`_env_field_value` computes for a ``metadata`` field path, as a getter over
    ``metadata`` (``None`` for every other path or an unsupported ``apiVersion``)."""
    if version not in (None, "", "v1"):
        return None
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        field = path.removeprefix("metadata.")
        return lambda meta: str(meta.get(field) or "")
    head, subscript = split_subscript(path)
    if subscript is not None and head in ("metadata.labels", "metadata.annotations"):
        table = head.removeprefix("metadata.")
        return lambda meta: str((meta.get(table) or {}).get(subscript, ""))
    return None


def _plan(pod: Pod, node: NodeInfo | None, escape_values: bool) -> _Plan | None:
    """One pass over the env of ``pod``: every ``fieldRef``/``resourceFieldRef`` entry resolved
    into a copy of its container's ``env``, except the pod-IP ones (kept in ``pending``: the
    IPs are asked only when some entry needs them). The first entry that cannot be resolved is
    kept in ``error``, raised once the IPs are known, as :func:`resolve_downward` would after
    them. ``None`` when the pod has no downward API env."""
    spec = pod.get("spec") or {}
    plan: _Plan | None = None
    memo: dict[tuple[Any, Any], str] = {}
    memo_get = memo.get
    error: FieldPathError | None = None
    needs_ips = False
    for key in CONTAINER_LISTS:
        for index, c in enumerate(spec.get(key) or ()):
            env = c.get("env")
            if not env:
                continue
            out: list[Any] | None = None
            for i, entry in enumerate(env):
                # inlined _downward_ref (hot): a literal value wins over valueFrom
                if entry.get("value"):
                    continue
                ref = entry.get("valueFrom")
                if not ref:
                    continue
                field_ref = ref.get("fieldRef")
                if field_ref is None and ref.get("resourceFieldRef") is None:
                    continue
                if out is None:
                    if plan is None:
                        plan = _Plan()
                    out = list(env)
                    plan.containers.append((key, index, c, out))
                if field_ref is not None:
                    path = field_ref.get("fieldPath")
                    if type(path) is not str:
                        path = None  # not a path: the general resolution reports it
                    elif path in POD_IP_FIELDS:
                        needs_ips = True
                        if error is None:
                            plan.pending.append((out, i, field_ref, c, entry))  # type: ignore[union-attr]
                        continue
                    if error is not None:
                        continue  # only looking for pod-IP entries now
                    # inlined memo hit of _field_ref_value (hot: containers repeat fields)
                    version = field_ref.get("apiVersion")
                    found = (
                        memo_get((path, version))
                        if path is not None and (version is None or type(version) is str)
                        else None
                    )
                    if type(found) is str:
                        out[i] = {"name": entry["name"], "value": found}
                        continue
                elif error is not None:
                    continue
                try:
                    value = _entry_value(pod, c, ref, node, None, escape_values, memo)
                except FieldPathError as e:
                    error = _wrap(e, c, entry)
                    continue
                out[i] = {"name": entry["name"], "value": value}
    if plan is not None:
        plan.memo = memo
        plan.error = error
        plan.needs_ips = needs_ips
    return plan


def _finish(
    pod: Pod,
    plan: _Plan,
    node: NodeInfo | None,
    pod_ips: Sequence[str] | None,
    escape_values: bool,
) -> Pod:
    """The pod of ``plan`` with its pod-IP entries filled in; raises the plan's error."""
    memo = plan.memo
    for out, i, field_ref, c, entry in plan.pending:
        # inlined memo hit (the path is one of POD_IP_FIELDS: a str)
        version = field_ref.get("apiVersion")
        found = (
            memo.get((field_ref.get("fieldPath"), version))
            if version is None or type(version) is str
            else None
        )
        if type(found) is str:
            out[i] = {"name": entry["name"], "value": found}
            continue
        try:
            value = _field_ref_value(pod, field_ref, node, pod_ips, escape_values, memo)
        except FieldPathError as e:
            raise _wrap(e, c, entry) from None
        out[i] = {"name": entry["name"], "value": value}
    if plan.error is not None:
        raise plan.error
    spec = pod.get("spec") or {}
    new_spec = dict(spec)
    for key, index, c, out in plan.containers:
        if new_spec[key] is spec[key]:
            new_spec[key] = list(spec[key])
        new_spec[key][index] = {**c, "env": out}
    return {**pod, "spec": new_spec}


def volume_item_value(
    pod: Pod, item: Mapping[str, Any], *, node_allocatable: Mapping[str, str] | None = None
) -> str:
    """The content of one ``downwardAPI`` volume item (``fieldRef`` or ``resourceFieldRef``).

    Volume files accept only ``metadata.*`` field paths; ``metadata.labels`` and
    ``metadata.annotations`` render as the kubelet's sorted ``key="value"`` lines.

    >>> pod = {"metadata": {"labels": {"zone": "us-est-coast", "rack": "rack-22"}}}
    >>> print(volume_item_value(pod, {"path": "labels",
    ...                               "fieldRef": {"fieldPath": "metadata.labels"}}))
    rack="rack-22"
    zone="us-est-coast"
    """
    if item.get("fieldRef") is not None:
        ref = item["fieldRef"]
        path = str(ref.get("fieldPath") or "")
        _, key = split_subscript(path)
        if key is None and path not in METADATA_FIELDS:
            raise FieldPathError(f"unsupported fieldPath: {path}")
        return field_value(pod, path, api_version=ref.get("apiVersion"))
    if item.get("resourceFieldRef") is not None:
        rf = item["resourceFieldRef"]
        return resource_value(
            pod,
            str(rf.get("containerName") or ""),
            str(rf.get("resource") or ""),
            rf.get("divisor"),
            node_allocatable,
        )
    raise FieldPathError(
        f"downwardAPI item {item.get('path')!r} has no fieldRef or resourceFieldRef"
    )


def _status_pod_ips(pod: Pod) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or () if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


class DownwardAPI:
    """Resolve env ``fieldRef``/``resourceFieldRef`` of the pods of CreatePod/UpdatePod.

    * ``node`` is used when an op carries no :class:`~vkcompose.ops.NodeInfo` of its own.
    * Pod IPs are asked only when some env refers to ``status.podIP(s)``: first from the
      backend (``AllocatePodIPs`` down the rest of the pipeline), then from the pod's status,
      then — for host-network pods or nodes — the node's host IPs. Otherwise the op fails with
      :class:`~vkcompose.errors.InvalidInput` (reason ``CreateContainerConfigError``) and the
      backend is not called.
    * ``escape_values`` (default true) writes values escaped for the later ``$(VAR)``
      expansion (see the module docs).
    """

    def __init__(self, node: NodeInfo | None = None, *, escape_values: bool = True) -> None:
        self.node = node
        self.escape_values = escape_values

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        match op:
            case CreatePod() | UpdatePod():
                pod = op.pod
                node = op.node or self.node
                plan = _plan(pod, node, self.escape_values)
                if plan is None:
                    return await call_next(op)
                pod_ips = await self._pod_ips(op, node, call_next) if plan.needs_ips else None
                try:
                    new_pod = _finish(pod, plan, node, pod_ips, self.escape_values)
                except FieldPathError as e:
                    raise InvalidInput(str(e), reason=CONFIG_ERROR) from None
                # only downward API entries are replaced: every Secret reference is kept (for
                # redaction; an entry naming both a fieldRef and a secretKeyRef resolves to the
                # fieldRef's value, no Secret data)
                token = REFS_KEPT.set((new_pod, pod, REFS_KEPT.get()))
                try:
                    return await call_next(with_pod(op, new_pod))
                finally:
                    REFS_KEPT.reset(token)
            case _:
                return await call_next(op)

    async def _pod_ips(
        self, op: CreatePod | UpdatePod, node: NodeInfo | None, call_next: Handler
    ) -> list[str]:
        try:
            ips = await call_next(AllocatePodIPs(pod=op.pod, node=node))
        except Unsupported:
            ips = None
        if ips:
            return [str(ip) for ip in ips]
        from_status = _status_pod_ips(op.pod)
        if from_status:
            return from_status
        host_network = bool((op.pod.get("spec") or {}).get("hostNetwork")) or (
            node is not None and node.host_network
        )
        if host_network and node is not None and node.host_ips:
            return list(node.host_ips)
        raise InvalidInput(
            "env refers to status.podIP/status.podIPs but the pod's IPs cannot be known: the "
            "backend does not report pod IPs (KnowsPodIPs) and the pod is not on the host network",
            reason=CONFIG_ERROR,
        )


__all__ = [
    "CONFIG_ERROR",
    "DownwardAPI",
    "has_downward_env",
    "needs_pod_ips",
    "resolve_downward",
    "resolve_downward_env",
    "volume_item_value",
]
