"""In-memory storage (tests, benchmarks, ephemeral clusters)."""

from __future__ import annotations

from typing import Any

import orjson

from vkcompose.apiserver.storage.base import Stored

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Objects in nested dicts ``resource -> namespace -> name``; nothing survives a restart."""

    def __init__(self) -> None:
        self._rv = 0
        self._data: dict[str, dict[str, dict[str, Stored]]] = {}

    def revision(self) -> int:
        """The resourceVersion of the latest write."""
        return self._rv

    def get(self, resource: str, namespace: str, name: str) -> Stored | None:
        """The current version of one object, or ``None``."""
        return self._data.get(resource, {}).get(namespace, {}).get(name)

    def list(self, resource: str, namespace: str | None = None) -> list[Stored]:
        """Objects ordered by (namespace, name)."""
        by_ns = self._data.get(resource)
        if not by_ns:
            return []
        if namespace is not None:
            items = by_ns.get(namespace)
            return [items[k] for k in sorted(items)] if items else []
        out: list[Stored] = []
        for ns in sorted(by_ns):
            items = by_ns[ns]
            out.extend(items[k] for k in sorted(items))
        return out

    def _stamp(self, obj: dict[str, Any]) -> Stored:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        return Stored(obj, orjson.dumps(obj), self._rv)

    def put(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> Stored:
        """Store ``obj`` under the next resourceVersion."""
        stored = self._stamp(obj)
        self._persist_put(resource, namespace, name, stored)
        self._data.setdefault(resource, {}).setdefault(namespace, {})[name] = stored
        return stored

    def delete(self, resource: str, namespace: str, name: str) -> Stored:
        """Remove one object (``KeyError`` if absent)."""
        by_ns = self._data[resource]
        items = by_ns[namespace]
        old = items[name]
        meta = dict(old.obj.get("metadata") or {})
        stored = self._stamp({**old.obj, "metadata": meta})
        self._persist_delete(resource, namespace, name, stored.rv)
        del items[name]
        if not items:
            del by_ns[namespace]
        return stored

    def _load(self, resource: str, namespace: str, name: str, raw: bytes, rv: int) -> None:
        self._data.setdefault(resource, {}).setdefault(namespace, {})[name] = Stored(
            orjson.loads(raw), raw, rv
        )

    def _persist_put(self, resource: str, namespace: str, name: str, stored: Stored) -> None:
        """Hook for durable subclasses: runs before the write becomes visible."""

    def _persist_delete(self, resource: str, namespace: str, name: str, rv: int) -> None:
        """Hook for durable subclasses: runs before the delete becomes visible."""

    def close(self) -> None:
        """Nothing to release."""
