"""Resource semantics of kube-apiserver over a :class:`Storage`: create, update, patch, delete
(graceful, finalizers, preconditions), status subresources, bindings and evictions."""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime
import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from vkcompose.apiserver import errors
from vkcompose.apiserver import patch as patching
from vkcompose.apiserver.defaults import (
    default_namespace,
    default_pod,
    default_secret,
    default_service,
    random_suffix,
)
from vkcompose.apiserver.errors import APIError
from vkcompose.apiserver.resources import ResourceTable, ResourceType
from vkcompose.apiserver.storage.base import Storage, Stored
from vkcompose.apiserver.watch import Event, WatchHub
from vkcompose.apiserver.young_gc import YoungCollector

__all__ = ["IMMORTAL_NAMESPACES", "ListResult", "Matcher", "Registry", "rfc3339", "timestamp"]

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
_TERMINAL = ("Succeeded", "Failed")
_KEPT_META = (
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)

# Kinds whose status writes also take metadata changes (as their upstream status strategies
# do) and need no validation when the metadata is unchanged: validation reads metadata and
# spec only, a status write keeps the spec from the stored object, and every write of their
# metadata or spec was validated (deletion only adds deletionTimestamp/grace/generation,
# binding only spec.nodeName of a pod, which a pod's status-write validation skips as an
# unchanged spec).
_STATUS_WRITES_KEEP_VALIDITY = frozenset({"Pod", "Node"})

# Kinds whose PUT must carry a resourceVersion (their strategy's AllowUnconditionalUpdate is
# false): two holders of a Lease must not overwrite each other blindly.
_CONDITIONAL_UPDATES_ONLY = frozenset({"Lease"})

Matcher = Callable[[dict[str, Any]], bool]


def _pod_status_update(status: dict[str, Any], old: Any) -> dict[str, Any]:
    """A pod status as kube-apiserver stores a write of it: ``podIP``/``podIPs`` and
    ``hostIP``/``hostIPs`` agree (the single field wins, as in the v1 conversion), and an
    empty ``qosClass`` keeps the old one (``podStatusStrategy.PrepareForUpdate``)."""
    out = status
    for one, many in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        ip, ips = out.get(one), out.get(many)
        first = (
            ips[0].get("ip") if isinstance(ips, list) and ips and isinstance(ips[0], dict) else None
        )
        if ip and ip != first:
            out = {**out, many: [{"ip": ip}]}
        elif first and not ip:
            out = {**out, one: first}
    qos = old.get("qosClass") if isinstance(old, dict) else None
    if qos and not out.get("qosClass"):
        out = {**out, "qosClass": qos}
    return out


def _check_container_transitions(rt: Any, new: dict[str, Any], old: dict[str, Any]) -> None:
    """A container that terminated does not run again unless the pod restarts it
    (kube-apiserver's ``ValidateContainerStateTransition``): with ``restartPolicy: Never``
    never, with ``OnFailure`` not after exit code 0; 422 otherwise."""
    policy = (old.get("spec") or {}).get("restartPolicy") or "Always"
    if policy == "Always":
        return
    old_statuses = (old.get("status") or {}).get("containerStatuses") or []
    if not any("terminated" in ((c or {}).get("state") or {}) for c in old_statuses):
        return
    new_statuses = (new.get("status") or {}).get("containerStatuses") or []
    states = {c.get("name"): (c.get("state") or {}) for c in new_statuses if isinstance(c, dict)}
    causes = []
    for i, status in enumerate(old_statuses):
        terminated = ((status or {}).get("state") or {}).get("terminated")
        if terminated is None:
            continue
        if policy == "OnFailure" and terminated.get("exitCode") != 0:
            continue
        state = states.get(status.get("name"))
        if state is not None and "terminated" not in state:
            causes.append(
                {
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: may not be transitioned to non-terminated state",
                    "field": f"status.containerStatuses[{i}].state",
                }
            )
    if causes:
        raise errors.invalid(rt.kind, new["metadata"].get("name") or "", causes, rt.group)


def rfc3339(t: datetime.datetime) -> str:
    """Kubernetes ``Time`` format (second precision, UTC, ``Z``)."""
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(offset_seconds: float = 0) -> str:
    """Now (plus an offset) in Kubernetes ``Time`` format."""
    return rfc3339(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_seconds))


def _copy(stored: Stored) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(stored.raw)
    return loaded


class ListResult:
    """Objects of one list page, the list's resourceVersion and the continue token."""

    __slots__ = ("continue_", "items", "remaining", "rv")

    def __init__(
        self, items: list[Stored], rv: int, continue_: str | None, remaining: int | None
    ) -> None:
        self.items = items
        self.rv = rv
        self.continue_ = continue_
        self.remaining = remaining


class Registry:
    """Applies kube-apiserver semantics and publishes committed changes to a :class:`WatchHub`.

    All methods are synchronous: each request's read-check-write runs without interleaving.
    """

    def __init__(
        self,
        storage: Storage,
        hub: WatchHub,
        table: ResourceTable,
        *,
        validate: Callable[[str, dict[str, Any], dict[str, Any] | None], list[dict[str, str]]]
        | None = None,
        token_volume: bool = True,
        root_ca_pem: str | None = None,
        service_cidr: str = "10.96.0.0/12",
    ) -> None:
        self.storage = storage
        self.hub = hub
        self.table = table
        self._validate = validate
        self.token_volume = token_volume
        self.root_ca_pem = root_ca_pem
        self._cidr = ipaddress.ip_network(service_cidr)
        self._pods = table.lookup("", "v1", "pods")
        self._namespaces = table.lookup("", "v1", "namespaces")
        self.young = YoungCollector()

    # ----------------------------------------------------------------- helpers
    def _publish(
        self,
        type_: str,
        rt: ResourceType,
        namespace: str,
        stored: Stored,
        prev: dict[str, Any] | None,
    ) -> None:
        self.hub.publish(Event(stored.rv, type_, rt.key, namespace, stored.obj, stored.raw, prev))
        self.young.wrote()

    def _require(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        cur = self.storage.get(rt.key, namespace, name)
        if cur is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return cur

    def _check_validation(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if self._validate is None:
            return
        causes = self._validate(rt.kind, obj, old)
        if causes:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise errors.invalid(rt.kind, str(name), causes, rt.group)

    def check_body(self, rt: ResourceType, body: Any, namespace: str | None) -> dict[str, Any]:
        """Check kind/apiVersion/namespace of a request body (400 on mismatch) and default
        missing ones; returns the body."""
        if not isinstance(body, dict):
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rt.kind})"
            )
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if api_version not in (None, "") and api_version != rt.group_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rt.group_version})"
            )
        if kind not in (None, "") and kind != rt.kind:
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rt.kind}): "
                f"kind {kind!r} in the data"
            )
        body["apiVersion"] = rt.group_version
        body["kind"] = rt.kind
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced and namespace is not None:
            given = meta.get("namespace")
            if given and given != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = namespace
        elif not rt.namespaced:
            meta.pop("namespace", None)
        return body

    # ----------------------------------------------------------------- reads
    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        """One object or 404."""
        return self._require(rt, namespace, name)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        match: Matcher | None = None,
        limit: int = 0,
        continue_: str = "",
    ) -> ListResult:
        """A (paged) list ordered by (namespace, name)."""
        items = self.storage.list(rt.key, namespace)
        rv = self.storage.revision()
        if continue_:
            start_rv, start = _decode_continue(continue_)
            rv = start_rv
            namespace_, _, name_ = start.partition("/")
            after = (namespace_, name_)  # compared as storage orders: (namespace, name)
            items = [s for s in items if _position(s.obj) > after]
        if match is not None:
            items = [s for s in items if match(s.obj)]
        token = None
        remaining = None
        if limit > 0 and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            token = _encode_continue(rv, _obj_key(items[-1].obj))
            remaining = rest if match is None else None
        return ListResult(items, rv, token, remaining)

    # ----------------------------------------------------------------- create
    def create(self, rt: ResourceType, namespace: str, body: dict[str, Any]) -> Stored:
        """Create an object (uid, creationTimestamp, generateName, defaults, validation)."""
        meta = body["metadata"]
        if rt.namespaced:
            if self.storage.get("namespaces", "", namespace) is None:
                raise errors.not_found("namespaces", namespace)
        else:
            namespace = ""
        name = meta.get("name")
        if not name and meta.get("generateName"):
            for _ in range(8):
                candidate = f"{meta['generateName']}{random_suffix()}"
                if self.storage.get(rt.key, namespace, candidate) is None:
                    name = candidate
                    break
            meta["name"] = name
        if not name:
            raise errors.invalid(
                rt.kind,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": "metadata.name",
                    }
                ],
                rt.group,
            )
        for key in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = timestamp()
        if rt.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._default(rt, body)
        self._check_validation(rt, body, None)
        if isinstance(name, str) and self.storage.get(rt.key, namespace, name) is not None:
            raise errors.already_exists(rt.plural, name, rt.group)
        stored = self.storage.put(rt.key, namespace, str(name), body)
        self._publish("ADDED", rt, namespace, stored, None)
        if rt is self._namespaces:
            self._populate_namespace(str(name))
        return stored

    def _default(self, rt: ResourceType, body: dict[str, Any]) -> None:
        if rt.group:
            return
        if rt.plural == "pods":
            default_pod(body, token_volume=self.token_volume)
        elif rt.plural == "namespaces":
            default_namespace(body)
        elif rt.plural == "secrets":
            default_secret(body)
        elif rt.plural == "services":
            spec = body.get("spec") or {}
            ip = None
            if spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("clusterIP"):
                ip = self._allocate_cluster_ip()
            default_service(body, ip)

    def _allocate_cluster_ip(self) -> str:
        used = {(s.obj.get("spec") or {}).get("clusterIP") for s in self.storage.list("services")}
        for i, addr in enumerate(self._cidr.hosts()):
            if i == 0:
                continue  # .1 is the kubernetes service
            if str(addr) not in used:
                return str(addr)
        raise APIError(500, "no cluster IPs left", reason="InternalError")

    def _populate_namespace(self, ns: str) -> None:
        sa = self.table.lookup("", "v1", "serviceaccounts")
        if sa is not None and self.storage.get(sa.key, ns, "default") is None:
            self.create(
                sa,
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": ns},
                },
            )
        cm = self.table.lookup("", "v1", "configmaps")
        if (
            cm is not None
            and self.root_ca_pem is not None
            and self.storage.get(cm.key, ns, "kube-root-ca.crt") is None
        ):
            self.create(
                cm,
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "namespace": ns,
                        "annotations": {
                            "kubernetes.io/description": "Contains a CA bundle that can be used to "
                            "verify the kube-apiserver when using internal endpoints such as the "
                            "internal service IP or kubernetes.default.svc. No other usage is "
                            "guaranteed across distributions of Kubernetes clusters."
                        },
                    },
                    "data": {"ca.crt": self.root_ca_pem},
                },
            )

    # ----------------------------------------------------------------- update / patch
    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        subresource: str = "",
    ) -> Stored:
        """PUT: optimistic concurrency on ``metadata.resourceVersion``."""
        meta = body["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        cur = self._require(rt, namespace, name)
        if rt.kind in _CONDITIONAL_UPDATES_ONLY and not meta.get("resourceVersion"):
            raise errors.invalid(
                rt.kind,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": "Invalid value: 0x0: must be specified for an update",
                        "field": "metadata.resourceVersion",
                    }
                ],
                rt.group,
            )
        return self._write(
            rt,
            namespace,
            cur,
            body,
            subresource,
            meta.get("resourceVersion"),
            uid_precondition=True,
        )

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: bytes,
        subresource: str = "",
    ) -> Stored:
        """PATCH with a JSON merge, strategic merge or JSON patch."""
        kind = _PATCH_TYPES.get(content_type.split(";")[0].strip().lower())
        if kind is None or kind == "apply":
            raise errors.unsupported_media_type(content_type)
        try:
            doc = orjson.loads(patch)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
        cur = self._require(rt, namespace, name)
        # The merge patches leave the stored object alone and share what they do not change
        # with it (no copy of the whole object); the top level and metadata, which the checks
        # below and the store write to, are made private.
        try:
            if kind == "merge":
                if not isinstance(doc, dict):
                    raise errors.bad_request("a JSON merge patch must be a JSON object")
                result = patching.merge_patch_shared(cur.obj, doc)
            elif kind == "strategic":
                if not isinstance(doc, dict):
                    raise errors.bad_request("a strategic merge patch must be a JSON object")
                result = patching.strategic_merge_patch_shared(cur.obj, doc, rt.kind)
            else:
                if not isinstance(doc, list):
                    raise errors.bad_request("a JSON patch must be a JSON array of operations")
                result = patching.apply_json_patch(cur.obj, doc)
        except patching.PatchError as exc:
            raise APIError(422, str(exc), reason="Invalid") from None
        if not isinstance(result, dict):
            raise APIError(422, "the patch did not produce an object", reason="Invalid")
        shared = result.get("metadata")
        if shared is cur.obj.get("metadata") and isinstance(shared, dict):
            result["metadata"] = dict(shared)
        result = self.check_body(rt, result, namespace if rt.namespaced else None)
        meta = result["metadata"]
        if meta.get("name") != name:
            raise errors.bad_request("the patch must not change metadata.name")
        expected = meta.get("resourceVersion")
        return self._write(
            rt,
            namespace,
            cur,
            result,
            subresource,
            expected if expected != cur.obj["metadata"]["resourceVersion"] else None,
        )

    def _write(
        self,
        rt: ResourceType,
        namespace: str,
        cur: Stored,
        new: dict[str, Any],
        subresource: str,
        expected_rv: Any,
        *,
        uid_precondition: bool = False,
    ) -> Stored:
        """Store ``new`` over ``cur``. A uid in ``new`` that is not the stored one fails: as a
        precondition of a PUT (409), as a change of an immutable field in a PATCH (422), so a
        write meant for an object deleted and created again never lands on the new one."""
        old = cur.obj
        if expected_rv not in (None, "") and str(expected_rv) != str(cur.rv):
            raise errors.conflict(rt.plural, old["metadata"]["name"], errors.STALE, rt.group)
        meta = new["metadata"]
        old_meta = old["metadata"]
        uid = meta.get("uid")
        if uid and uid != old_meta.get("uid"):
            if uid_precondition:
                raise errors.conflict(
                    rt.plural,
                    old_meta["name"],
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{old_meta.get('uid')}",
                    rt.group,
                )
            raise errors.invalid(
                rt.kind,
                old_meta["name"],
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {orjson.dumps(uid).decode()}: field is "
                        "immutable",
                        "field": "metadata.uid",
                    }
                ],
                rt.group,
            )
        if subresource == "status":
            # stored objects are never mutated: share everything but metadata and status
            result = {**old, "metadata": dict(old_meta)}
            if rt.kind in _STATUS_WRITES_KEEP_VALIDITY and meta != old_meta:
                # pods/status and nodes/status take metadata changes (labels, annotations…)
                # too; what the status strategies reset, and the system fields, stay
                kept = _KEPT_META + (("ownerReferences",) if rt.kind == "Pod" else ())
                result["metadata"] = {
                    **{k: v for k, v in meta.items() if k not in kept},
                    **{k: old_meta[k] for k in kept if k in old_meta},
                }
            if "status" in new:
                result["status"] = new["status"]
                if rt.kind == "Pod" and isinstance(new["status"], dict):
                    result["status"] = _pod_status_update(new["status"], old.get("status"))
            else:
                result.pop("status", None)
            new = result
        elif subresource == "finalize":
            result = _copy(cur)
            result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get(
                "finalizers"
            ) or []
            new = result
        else:
            for key in _KEPT_META:
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if rt.status_subresource:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            if rt.generation and _spec_of(new) != _spec_of(old):
                meta["generation"] = int(old_meta.get("generation") or 0) + 1
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if old_meta.get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or ()) - set(
                old_meta.get("finalizers") or ()
            )
            if added:
                raise errors.invalid(
                    rt.kind,
                    old_meta["name"],
                    [
                        {
                            "reason": "FieldValueForbidden",
                            "message": "Forbidden: no new finalizers can be added if the object is "
                            "being deleted",
                            "field": "metadata.finalizers",
                        }
                    ],
                    rt.group,
                )
        if (
            subresource != "status"
            or rt.kind not in _STATUS_WRITES_KEEP_VALIDITY
            or new["metadata"] != old_meta
        ):
            self._check_validation(rt, new, old)
        if subresource == "status" and rt.kind == "Pod":
            _check_container_transitions(rt, new, old)
        if new == old:
            return cur
        new_meta = new["metadata"]
        stored = self.storage.put(rt.key, namespace, new_meta["name"], new)
        self._publish("MODIFIED", rt, namespace, stored, old)
        if (
            new_meta.get("deletionTimestamp")
            and not new_meta.get("finalizers")
            and not new_meta.get("deletionGracePeriodSeconds")
        ):
            return self._remove(rt, namespace, stored)
        return stored

    # ----------------------------------------------------------------- delete
    def _remove(self, rt: ResourceType, namespace: str, cur: Stored) -> Stored:
        stored = self.storage.delete(rt.key, namespace, cur.obj["metadata"]["name"])
        self._publish("DELETED", rt, namespace, stored, cur.obj)
        return stored

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: dict[str, Any]
    ) -> tuple[Stored, bool]:
        """DELETE with preconditions, graceful deletion (pods) and finalizers.

        Returns the object's latest state and whether it is gone from storage.
        """
        cur = self._require(rt, namespace, name)
        meta = cur.obj["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(
                rt.kind,  # upstream's BeforeDelete names the kind here, not the resource
                name,
                f"the UID in the precondition ({pre['uid']}) does not match the UID in record "
                f"({meta.get('uid')}). The object might have been deleted and then recreated",
                rt.group,
            )
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(cur.rv):
            raise errors.conflict(
                rt.kind,
                name,
                f"the ResourceVersion in the precondition ({pre['resourceVersion']}) does not "
                f"match the ResourceVersion in record ({cur.rv}). The object might have been "
                f"modified",
                rt.group,
            )
        if rt is self._namespaces and name in IMMORTAL_NAMESPACES:
            raise errors.forbidden(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                "namespaces",
                name,
            )
        grace = options.get("gracePeriodSeconds")
        if grace is not None:
            try:
                grace = int(grace)
            except (TypeError, ValueError):
                raise errors.bad_request("gracePeriodSeconds must be an integer") from None
            if grace < 0:
                grace = 1
        finalizers = meta.get("finalizers") or []
        if rt is self._pods:
            return self._delete_graceful(rt, namespace, cur, grace, finalizers)
        if finalizers:
            if meta.get("deletionTimestamp"):
                return cur, False
            obj = _copy(cur)
            obj["metadata"]["deletionTimestamp"] = timestamp()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            stored = self.storage.put(rt.key, namespace, name, obj)
            self._publish("MODIFIED", rt, namespace, stored, cur.obj)
            return stored, False
        if rt is self._namespaces:
            self._empty_namespace(name)
        return self._remove(rt, namespace, cur), True

    def _delete_graceful(
        self,
        rt: ResourceType,
        namespace: str,
        cur: Stored,
        grace: int | None,
        finalizers: builtins.list[str],
    ) -> tuple[Stored, bool]:
        meta = cur.obj["metadata"]
        spec = cur.obj.get("spec") or {}
        phase = (cur.obj.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp"):
            old_grace = meta.get("deletionGracePeriodSeconds")
            if old_grace:
                if grace is None or grace >= old_grace:
                    return cur, False  # graceful deletion already pending
                obj = _copy(cur)
                start = _parse_time(meta["deletionTimestamp"]) - datetime.timedelta(
                    seconds=int(old_grace)
                )
                obj["metadata"]["deletionTimestamp"] = rfc3339(
                    start + datetime.timedelta(seconds=grace)
                )
                obj["metadata"]["deletionGracePeriodSeconds"] = grace
                return self._finish_graceful(rt, namespace, cur, obj, grace, finalizers)
            if finalizers:
                return cur, False
            return self._remove(rt, namespace, cur), True
        period = grace if grace is not None else int(spec.get("terminationGracePeriodSeconds") or 0)
        if not spec.get("nodeName") or phase in _TERMINAL:
            period = 0
        obj = _copy(cur)
        obj["metadata"]["deletionTimestamp"] = timestamp(period)
        obj["metadata"]["deletionGracePeriodSeconds"] = period
        if obj["metadata"].get("generation"):
            obj["metadata"]["generation"] = int(obj["metadata"]["generation"]) + 1
        return self._finish_graceful(rt, namespace, cur, obj, period, finalizers)

    def _finish_graceful(
        self,
        rt: ResourceType,
        namespace: str,
        cur: Stored,
        obj: dict[str, Any],
        period: int,
        finalizers: builtins.list[str],
    ) -> tuple[Stored, bool]:
        name = obj["metadata"]["name"]
        stored = self.storage.put(rt.key, namespace, name, obj)
        self._publish("MODIFIED", rt, namespace, stored, cur.obj)
        if period > 0 or finalizers:
            return stored, False
        return self._remove(rt, namespace, stored), True

    def _empty_namespace(self, ns: str) -> None:
        for rt in self.table.resources:
            if rt.namespaced and not rt.virtual:
                for stored in self.storage.list(rt.key, ns):
                    self._remove(rt, ns, stored)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        match: Matcher | None,
        options: dict[str, Any],
    ) -> builtins.list[Stored]:
        """DELETE on a collection: deletes every matching object (as single deletes would)."""
        out = []
        for stored in self.storage.list(rt.key, namespace):
            if match is None or match(stored.obj):
                meta = stored.obj["metadata"]
                try:
                    obj, _ = self.delete(rt, meta.get("namespace", ""), meta["name"], options)
                except APIError:
                    continue
                out.append(obj)
        return out

    # ----------------------------------------------------------------- pod subresources
    def bind(self, namespace: str, name: str, binding: dict[str, Any]) -> None:
        """``pods/<name>/binding``: set ``spec.nodeName`` once, mark PodScheduled."""
        assert self._pods is not None
        target = binding.get("target") or {}
        node = target.get("name")
        if not node:
            raise errors.invalid(
                "Binding",
                name,
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": "target.name",
                    }
                ],
            )
        cur = self._require(self._pods, namespace, name)
        meta = cur.obj["metadata"]
        pre_uid = (binding.get("metadata") or {}).get("uid")
        if pre_uid and pre_uid != meta.get("uid"):
            raise errors.conflict("pods", name, "the UID in the binding does not match the pod")
        if meta.get("deletionTimestamp"):
            raise errors.conflict(
                "pods/binding", name, f"pod {name} is being deleted, cannot be assigned to a host"
            )
        current = (cur.obj.get("spec") or {}).get("nodeName")
        if current:
            raise errors.conflict(
                "pods/binding", name, f'pod {name} is already assigned to node "{current}"'
            )
        obj = _copy(cur)
        obj["spec"]["nodeName"] = node
        status = obj.setdefault("status", {})
        conds = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
        conds.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": timestamp(),
            }
        )
        status["conditions"] = conds
        stored = self.storage.put(self._pods.key, namespace, name, obj)
        self._publish("MODIFIED", self._pods, namespace, stored, cur.obj)

    def evict(self, namespace: str, name: str, eviction: dict[str, Any]) -> None:
        """``pods/<name>/eviction``: a (graceful) delete with the eviction's delete options."""
        assert self._pods is not None
        self.delete(self._pods, namespace, name, eviction.get("deleteOptions") or {})


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _position(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


def _obj_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _encode_continue(rv: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = orjson.loads(raw)
        return int(doc["rv"]), str(doc["start"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)"
        ) from None


def _parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
