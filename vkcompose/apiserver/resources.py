"""The resource table: one row per served resource drives routing, discovery and tables."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = ["RESOURCES", "ResourceTable", "ResourceType"]

_CRUD = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@attrs.frozen
class ResourceType:
    """One served resource (a plural under a group/version)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _CRUD
    #: the object has a ``status`` that only ``/status`` writes change
    status_subresource: bool = False
    #: ``metadata.generation`` is kept (bumped on spec changes)
    generation: bool = False
    #: objects are not stored (review-style resources, create only)
    virtual: bool = False

    @property
    def group_version(self) -> str:
        """``apiVersion`` of objects of this resource."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        """The lowercase kind, as discovery reports it."""
        return self.kind.lower()

    @property
    def key(self) -> str:
        """Storage key of the resource (``pods``, ``leases.coordination.k8s.io``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        """Kind of list responses."""
        return self.kind + "List"


def _core(kind: str, plural: str, namespaced: bool, *short: str, **kw: object) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, short, **kw)  # type: ignore[arg-type]


_REVIEW = ("create",)

RESOURCES: tuple[ResourceType, ...] = (
    _core(
        "Namespace",
        "namespaces",
        False,
        "ns",
        subresources=("status", "finalize"),
        status_subresource=True,
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _core("Node", "nodes", False, "no", subresources=("status",), status_subresource=True),
    _core(
        "Pod",
        "pods",
        True,
        "po",
        subresources=("status", "binding", "eviction"),
        categories=("all",),
        status_subresource=True,
        generation=True,
    ),
    _core("ConfigMap", "configmaps", True, "cm"),
    _core("Secret", "secrets", True),
    _core(
        "Service",
        "services",
        True,
        "svc",
        subresources=("status",),
        categories=("all",),
        status_subresource=True,
    ),
    _core("ServiceAccount", "serviceaccounts", True, "sa", subresources=("token",)),
    _core("Event", "events", True, "ev"),
    _core("Endpoints", "endpoints", True, "ep"),
    _core("LimitRange", "limitranges", True, "limits"),
    _core(
        "ResourceQuota",
        "resourcequotas",
        True,
        "quota",
        subresources=("status",),
        status_subresource=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
    ResourceType("events.k8s.io", "v1", "Event", "events", True, ("ev",)),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        False,
        verbs=_REVIEW,
        virtual=True,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        False,
        verbs=_REVIEW,
        virtual=True,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        False,
        verbs=_REVIEW,
        virtual=True,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        verbs=_REVIEW,
        virtual=True,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        True,
        verbs=_REVIEW,
        virtual=True,
    ),
)


class ResourceTable:
    """Lookup of :class:`ResourceType` rows by group/version/plural and by kind."""

    def __init__(self, resources: Iterable[ResourceType] = RESOURCES) -> None:
        self.resources = tuple(resources)
        self._by_path = {(r.group, r.version, r.plural): r for r in self.resources}
        self._by_kind = {(r.group, r.kind): r for r in self.resources}

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The resource served at ``/apis/<group>/<version>/<plural>``."""
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        """The resource storing objects of ``kind`` in ``group``."""
        return self._by_kind.get((group, kind))

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions per group (``""`` is the legacy core group)."""
        out: dict[str, list[str]] = {}
        for r in self.resources:
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        """Resources served under one group/version, in table order."""
        return [r for r in self.resources if r.group == group and r.version == version]
