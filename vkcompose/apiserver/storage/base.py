"""The storage protocol: objects keyed by (resource, namespace, name) with one global revision."""

from __future__ import annotations

from typing import Any, Protocol

import attrs

__all__ = ["Storage", "Stored"]


@attrs.frozen
class Stored:
    """One stored object version: the parsed dict (never mutated), its JSON bytes and its RV.

    ``obj`` is shared by every reader; callers copy it before changing anything.
    """

    obj: dict[str, Any]
    raw: bytes
    rv: int


class Storage(Protocol):
    """Synchronous object store; every write takes the next global resourceVersion.

    Methods are synchronous and run on the event-loop thread, so a read-check-write sequence
    in the registry is atomic and events are published in resourceVersion order.
    """

    def revision(self) -> int:
        """The resourceVersion of the latest write (0 for an empty store)."""
        ...

    def get(self, resource: str, namespace: str, name: str) -> Stored | None:
        """The current version of one object, or ``None``."""
        ...

    def list(self, resource: str, namespace: str | None = None) -> list[Stored]:
        """Objects of a resource (in one namespace or all), ordered by (namespace, name)."""
        ...

    def put(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> Stored:
        """Write ``obj`` with the next resourceVersion (set in ``metadata.resourceVersion``).

        ``obj`` is taken over by the store and must not be changed by the caller afterwards.
        The write is durable when this returns.
        """
        ...

    def delete(self, resource: str, namespace: str, name: str) -> Stored:
        """Remove one object; returns its last state stamped with the deletion's RV."""
        ...

    def close(self) -> None:
        """Release resources (files, connections)."""
        ...
