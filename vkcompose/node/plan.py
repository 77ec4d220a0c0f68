"""Pure reconciliation planning between the API's pods and the backend's pods.

Used at startup (and on every resync) so that pods are **never created twice**: a pod the
backend already runs is adopted; a pod the API no longer has is deleted from the backend; only
a pod the backend does not run is (re)created, and only when it is not terminal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs
import orjson

from vkcompose.node.status import is_terminal
from vkcompose.podspec import Pod

PodKey = tuple[str, str]
"""``(namespace, name)``."""

__all__ = ["Plan", "PodKey", "has_downward_metadata", "key_of", "plan", "update_fingerprint"]


def key_of(pod: Mapping[str, Any]) -> PodKey:
    """``(namespace, name)`` of a pod JSON."""
    meta = pod.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")


def uid_of(pod: Mapping[str, Any] | None) -> str:
    """``metadata.uid`` (empty when absent)."""
    return str(((pod or {}).get("metadata") or {}).get("uid") or "")


def has_downward_metadata(pod: Mapping[str, Any]) -> bool:
    """Whether a volume projects ``metadata.labels``/``annotations`` (so they are mutable inputs).

    >>> has_downward_metadata({"spec": {"volumes": [{"name": "i", "downwardAPI": {"items": [
    ...     {"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}})
    True
    """
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        sources = []
        if "downwardAPI" in vol:
            sources.append(vol["downwardAPI"] or {})
        for src in (vol.get("projected") or {}).get("sources") or []:
            if "downwardAPI" in src:
                sources.append(src["downwardAPI"] or {})
        for src in sources:
            for item in src.get("items") or []:
                path = (item.get("fieldRef") or {}).get("fieldPath", "")
                if path.startswith(("metadata.labels", "metadata.annotations")):
                    return True
    return False


def update_fingerprint(pod: Mapping[str, Any]) -> bytes:
    """Digest of the fields a running pod may change that a backend must apply.

    Images of (init and ephemeral) containers, ``activeDeadlineSeconds``, and — only when a
    downward-API volume projects them — labels and annotations.

    >>> a = {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    >>> b = {"spec": {"containers": [{"name": "c", "image": "x:2"}]}}
    >>> update_fingerprint(a) == update_fingerprint(b)
    False
    >>> update_fingerprint(a) == update_fingerprint({**a, "metadata": {"labels": {"x": "y"}}})
    True
    """
    spec = pod.get("spec") or {}
    images = [
        [c.get("name"), c.get("image")]
        for field in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(field) or []
    ]
    parts: list[Any] = [images, spec.get("activeDeadlineSeconds")]
    if has_downward_metadata(pod):
        meta = pod.get("metadata") or {}
        parts.append(meta.get("labels") or {})
        parts.append(meta.get("annotations") or {})
    return orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)


@attrs.frozen
class Plan:
    """What to do so that the API's pods and the backend's pods match."""

    adopt: dict[PodKey, Pod]
    """API pods the backend already runs (value: the backend's pod)."""
    delete: list[Pod]
    """Backend pods with no live API pod of the same UID (orphans): stop them."""
    create: list[PodKey]
    """API pods the backend does not run and that are not terminal."""


def plan(
    api_pods: Mapping[PodKey, Pod],
    backend_pods: Iterable[Pod],
    *,
    node_names: Collection[str] | None = None,
) -> Plan:
    """Match API pods with backend pods by key and UID.

    Backend pods bound to a node outside ``node_names`` are left alone (another process may
    own them). A backend pod whose UID differs from the API pod of the same name is an orphan
    (the API pod was deleted and recreated): it is deleted and the new one created.

    >>> api = {("d", "a"): {"metadata": {"namespace": "d", "name": "a", "uid": "1"}},
    ...        ("d", "b"): {"metadata": {"namespace": "d", "name": "b", "uid": "2"}}}
    >>> be = [{"metadata": {"namespace": "d", "name": "a", "uid": "1"}},
    ...       {"metadata": {"namespace": "d", "name": "z", "uid": "9"}}]
    >>> p = plan(api, be)
    >>> sorted(p.adopt), [key_of(x) for x in p.delete], p.create
    ([('d', 'a')], [('d', 'z')], [('d', 'b')])
    """
    names = set(node_names) if node_names is not None else None
    adopt: dict[PodKey, Pod] = {}
    delete: list[Pod] = []
    for bpod in backend_pods:
        node = (bpod.get("spec") or {}).get("nodeName")
        if names is not None and node and node not in names:
            continue
        key = key_of(bpod)
        api = api_pods.get(key)
        buid = uid_of(bpod)
        if api is not None and (not buid or buid == uid_of(api)) and key not in adopt:
            adopt[key] = bpod
        else:
            delete.append(bpod)
    create = [
        key
        for key, pod in api_pods.items()
        if key not in adopt
        and not is_terminal(pod)
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
    ]
    return Plan(adopt=adopt, delete=delete, create=create)
