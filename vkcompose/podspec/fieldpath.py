"""Downward API values extracted from pod JSON, as the kubelet computes them.

* :func:`field_value` — a ``fieldRef`` (``metadata.name``, ``metadata.labels['k']``,
  ``status.podIPs`` …);
* :func:`resource_value` — a ``resourceFieldRef`` (``limits.cpu`` with a ``divisor`` …),
  rounded up, a missing cpu/memory/ephemeral-storage limit defaulting to the node's
  allocatable amount;
* :func:`format_labels_file` — the content of a downwardAPI volume file holding all labels or
  annotations (sorted ``key="value"`` lines, values quoted like Go's ``%q``).

>>> pod = {"metadata": {"name": "web", "labels": {"app": "web", "tier": "a\\"b"}},
...        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m"}}}]}}
>>> field_value(pod, "metadata.labels['app']")
'web'
>>> print(field_value(pod, "metadata.labels"))
app="web"
tier="a\\"b"
>>> resource_value(pod, "c", "requests.cpu", "1m")
'250'
>>> resource_value(pod, "c", "limits.memory", "1Mi", {"memory": "2Gi"})
'2048'

All functions are pure and raise :class:`FieldPathError` (a ``ValueError``) for paths or
resources the kubelet does not support, or for values that cannot be known (e.g. a pod IP
when none is given — never an empty string).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from vkcompose.podspec import Pod
from vkcompose.podspec.quantity import parse_quantity


class FieldPathError(ValueError):
    """A downward API reference that cannot be resolved (message in the kubelet's words)."""


METADATA_FIELDS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.labels",
        "metadata.annotations",
    }
)
"""Field paths a downwardAPI *volume* file may use (plus subscripted labels/annotations)."""

ENV_FIELDS = METADATA_FIELDS | {
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
}
"""Field paths an env ``fieldRef`` may use (plus subscripted labels/annotations)."""

POD_IP_FIELDS = frozenset({"status.podIP", "status.podIPs"})
HOST_IP_FIELDS = frozenset({"status.hostIP", "status.hostIPs"})


def split_subscript(field_path: str) -> tuple[str, str | None]:
    """Split ``metadata.labels['k']`` into ``("metadata.labels", "k")``; others get ``None``.

    Mirrors the kubelet's ``SplitMaybeSubscriptedPath``.

    >>> split_subscript("metadata.annotations['a[b]c']")
    ('metadata.annotations', 'a[b]c')
    >>> split_subscript("metadata.name")
    ('metadata.name', None)
    """
    if not field_path.endswith("']"):
        return field_path, None
    head, sep, key = field_path[:-2].partition("['")
    if not sep or not head:
        return field_path, None
    return head, key


def field_value(
    pod: Pod,
    field_path: str,
    *,
    host_ips: Sequence[str] = (),
    pod_ips: Sequence[str] | None = None,
    api_version: str | None = None,
) -> str:
    """The value of ``fieldRef.fieldPath`` for ``pod`` (kubelet's podFieldSelectorRuntimeValue).

    ``host_ips`` are the node's IPs (primary first); ``pod_ips`` the pod's (primary first).
    Asking for an IP that is not given raises :class:`FieldPathError`.
    """
    if api_version not in (None, "", "v1"):
        raise FieldPathError(f"unsupported pod version: {api_version}")
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    path, key = split_subscript(field_path)
    if key is not None:
        if path == "metadata.labels":
            return str((meta.get("labels") or {}).get(key, ""))
        if path == "metadata.annotations":
            return str((meta.get("annotations") or {}).get(key, ""))
        raise FieldPathError(f'fieldPath "{field_path}" does not support subscript')
    spec: Mapping[str, Any] = pod.get("spec") or {}
    match field_path:
        case "metadata.name" | "metadata.namespace" | "metadata.uid":
            return str(meta.get(field_path.removeprefix("metadata.")) or "")
        case "metadata.labels" | "metadata.annotations":
            return format_labels_file(meta.get(field_path.removeprefix("metadata.")) or {})
        case "spec.nodeName" | "spec.serviceAccountName":
            return str(spec.get(field_path.removeprefix("spec.")) or "")
        case "status.hostIP" | "status.hostIPs":
            if not host_ips:
                raise FieldPathError(f"{field_path}: the node's IP addresses are not known")
            return host_ips[0] if field_path == "status.hostIP" else ",".join(host_ips)
        case "status.podIP" | "status.podIPs":
            if not pod_ips:
                raise FieldPathError(f"{field_path}: the pod's IP addresses are not known")
            return pod_ips[0] if field_path == "status.podIP" else ",".join(pod_ips)
    raise FieldPathError(f"field label not supported: {field_path}")


# --- resources ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _units(text: str, milli: bool) -> tuple[int, bool]:
    """``(Value() or MilliValue(), is_zero)`` of a quantity string, as Go computes them.

    Go rounds both up to an integer. Cached: pods repeat the same few quantity strings.
    """
    try:
        q = parse_quantity(text)
    except ValueError as e:
        raise FieldPathError(str(e)) from None
    return math.ceil(q * 1000 if milli else q), q == 0


_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")


def find_container(pod: Pod, name: str) -> Mapping[str, Any]:
    """The container (or init container) called ``name``; :class:`FieldPathError` if none."""
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            if container.get("name") == name:
                return container  # type: ignore[no-any-return]
    raise FieldPathError(f"container {name} not found")


def resource_value(
    pod: Pod,
    container_name: str | Mapping[str, Any],
    resource: str,
    divisor: str | None = None,
    node_allocatable: Mapping[str, str] | None = None,
) -> str:
    """The value of a ``resourceFieldRef`` as the kubelet renders it.

    ``container_name`` names a container of ``pod`` (or is the container dict itself).
    ``resource`` is ``limits.cpu``, ``requests.memory``, ``limits.ephemeral-storage``,
    ``requests.hugepages-2Mi`` …; the value is divided by ``divisor`` (default ``1``) and
    rounded up (cpu in thousandths first, so ``250m`` with divisor ``1`` gives ``1``). A
    container without a (non-zero) cpu, memory or ephemeral-storage limit gets the node's
    allocatable amount (the kubelet's ``MergeContainerResourceLimits``); a resource with
    neither gives ``0``.
    """
    container = (
        find_container(pod, container_name) if isinstance(container_name, str) else container_name
    )
    resources = container.get("resources") or {}
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise FieldPathError(f"unsupported container resource : {resource}")
    if name not in ("cpu", "memory", "ephemeral-storage") and not name.startswith("hugepages-"):
        raise FieldPathError(f"unsupported container resource : {resource}")
    amounts: Mapping[str, Any] = resources.get(kind) or {}
    raw = amounts.get(name)
    milli = name == "cpu"
    units, zero = _units(str(raw), milli) if raw is not None else (0, True)
    if kind == "limits" and zero and node_allocatable and name in _DEFAULTED_LIMITS:
        allocatable = node_allocatable.get(name)
        if allocatable is not None:
            units, zero = _units(str(allocatable), milli)
    div_units, div_zero = _units(str(divisor), milli) if divisor else (0, True)
    if div_zero:
        div_units = 1000 if milli else 1
    # float64 division then ceil, exactly as convertResource*ToString.
    return str(math.ceil(float(units) / float(div_units)))


# --- labels/annotations file ---------------------------------------------------------------

_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(s: str) -> str:
    """Quote ``s`` as Go's ``strconv.Quote`` (``%q``) does.

    >>> go_quote('tab\\there "q" \\x00 é \\u00a0')
    '"tab\\\\there \\\\"q\\\\" \\\\x00 é \\\\u00a0"'
    """
    out = ['"']
    for ch in s:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:  # a lone surrogate: Go decodes it as U+FFFD
            ch, code = "\ufffd", 0xFFFD
        escaped = _SIMPLE_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def format_labels_file(mapping: Mapping[str, Any]) -> str:
    """``key="value"`` lines sorted by key, joined by newlines (the kubelet's ``FormatMap``).

    >>> format_labels_file({"zone": "us-est-coast", "cluster": "test-cluster1"})
    'cluster="test-cluster1"\\nzone="us-est-coast"'
    """
    return "\n".join(
        f"{key}={go_quote(str(mapping[key]))}"
        for key in sorted(mapping, key=lambda k: k.encode("utf-8", "surrogatepass"))
    )


__all__ = [
    "ENV_FIELDS",
    "HOST_IP_FIELDS",
    "METADATA_FIELDS",
    "POD_IP_FIELDS",
    "FieldPathError",
    "field_value",
    "find_container",
    "format_labels_file",
    "go_quote",
    "resource_value",
    "split_subscript",
]
