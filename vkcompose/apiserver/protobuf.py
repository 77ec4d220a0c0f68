"""Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) as JSON dicts.

Typed Go clients, kubectl's imperative commands among them (``create configmap``, ``create
token``, ``auth can-i``...), send bodies in the Kubernetes protobuf envelope: the magic
``k8s\\x00`` and a ``runtime.Unknown`` message (``typeMeta`` 1, ``raw`` 2, ``contentEncoding`` 3,
``contentType`` 4) whose ``raw`` is the go-to-protobuf encoding of the typed object.

This module decodes that envelope into the JSON dict the same object would have as JSON, so
the rest of the server sees no difference. It is pure (no I/O): a protobuf wire-format reader
and a declarative schema (field number → JSON name and type) for the kinds kubectl sends.

go-to-protobuf writes every non-pointer field, zero values included, where JSON's
``omitempty`` leaves them out; the decoder drops zero scalars unless the field is a Go pointer
(``Field.ptr``), where an explicit ``false``/``0`` means something (``immutable``,
``automountServiceAccountToken``, ``expirationSeconds``...).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from typing import Any, NamedTuple

from vkcompose.apiserver.errors import APIError, bad_request

__all__ = [
    "CONTENT_TYPE",
    "KINDS",
    "MAGIC",
    "Field",
    "ProtobufError",
    "decode_envelope",
    "decode_message",
    "decode_object",
    "request_body",
]

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# wire types
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_MAX_DEPTH = 32


class ProtobufError(ValueError):
    """A body that is not valid Kubernetes protobuf, or of a kind this module cannot read."""


class UnknownKind(ProtobufError):
    """A well-formed envelope carrying a kind without a schema here."""


class Field(NamedTuple):
    """One field of a message schema.

    ``type`` is ``str``, ``bytes`` (base64 in JSON), ``bool``, ``int``, ``time`` (meta/v1
    Time, RFC 3339), ``quantity`` (resource.Quantity), ``intstr`` (IntOrString), ``strings``
    (a message wrapping ``repeated string items = 1``, a list in JSON), ``map``
    (``value`` is the map's value type) or the name of another message in :data:`MESSAGES`.
    """

    name: str
    type: str
    repeated: bool = False
    ptr: bool = False
    value: str = ""


def _f(name: str, type_: str = "str", **kw: Any) -> Field:
    return Field(name, type_, **kw)


def _rep(name: str, type_: str = "str") -> Field:
    return Field(name, type_, repeated=True)


def _map(name: str, value: str = "str") -> Field:
    return Field(name, "map", value=value)


def _ptr(name: str, type_: str) -> Field:
    return Field(name, type_, ptr=True)


Schema = Mapping[int, Field]

# Field numbers from the upstream generated.proto files (k8s.io/api and apimachinery).
MESSAGES: dict[str, Schema] = {
    # ---------------------------------------------------------------- meta/v1
    "ObjectMeta": {
        1: _f("name"),
        2: _f("generateName"),
        3: _f("namespace"),
        4: _f("selfLink"),
        5: _f("uid"),
        6: _f("resourceVersion"),
        7: _f("generation", "int"),
        8: _f("creationTimestamp", "time"),
        9: _f("deletionTimestamp", "time"),
        10: _ptr("deletionGracePeriodSeconds", "int"),
        11: _map("labels"),
        12: _map("annotations"),
        13: _rep("ownerReferences", "OwnerReference"),
        14: _rep("finalizers"),
        # 17 managedFields: not kept by this server, skipped
    },
    "OwnerReference": {
        5: _f("apiVersion"),
        1: _f("kind"),
        3: _f("name"),
        4: _f("uid"),
        6: _ptr("controller", "bool"),
        7: _ptr("blockOwnerDeletion", "bool"),
    },
    "DeleteOptions": {
        1: _ptr("gracePeriodSeconds", "int"),
        2: _ptr("preconditions", "Preconditions"),
        3: _ptr("orphanDependents", "bool"),
        4: _ptr("propagationPolicy", "str"),
        5: _rep("dryRun"),
        6: _ptr("ignoreStoreReadErrorWithClusterBreakingPotential", "bool"),
    },
    "Preconditions": {1: _ptr("uid", "str"), 2: _ptr("resourceVersion", "str")},
    "LabelSelector": {
        1: _map("matchLabels"),
        2: _rep("matchExpressions", "LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: _f("key"), 2: _f("operator"), 3: _rep("values")},
    # ---------------------------------------------------------------- core/v1
    "ConfigMap": {
        1: _f("metadata", "ObjectMeta"),
        2: _map("data"),
        3: _map("binaryData", "bytes"),
        4: _ptr("immutable", "bool"),
    },
    "Secret": {
        1: _f("metadata", "ObjectMeta"),
        2: _map("data", "bytes"),
        4: _map("stringData"),
        3: _f("type"),
        5: _ptr("immutable", "bool"),
    },
    "Namespace": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "NamespaceSpec"),
        3: _f("status", "NamespaceStatus"),
    },
    "NamespaceSpec": {1: _rep("finalizers")},
    "NamespaceStatus": {1: _f("phase")},
    "ServiceAccount": {
        1: _f("metadata", "ObjectMeta"),
        2: _rep("secrets", "ObjectReference"),
        3: _rep("imagePullSecrets", "LocalObjectReference"),
        4: _ptr("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {
        1: _f("kind"),
        2: _f("namespace"),
        3: _f("name"),
        4: _f("uid"),
        5: _f("apiVersion"),
        6: _f("resourceVersion"),
        7: _f("fieldPath"),
    },
    "LocalObjectReference": {1: _f("name")},
    "Service": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "ServiceSpec"),
        3: _f("status", "ServiceStatus"),
    },
    "ServiceSpec": {
        1: _rep("ports", "ServicePort"),
        2: _map("selector"),
        3: _f("clusterIP"),
        18: _rep("clusterIPs"),
        4: _f("type"),
        5: _rep("externalIPs"),
        7: _f("sessionAffinity"),
        8: _f("loadBalancerIP"),
        9: _rep("loadBalancerSourceRanges"),
        10: _f("externalName"),
        11: _f("externalTrafficPolicy"),
        12: _f("healthCheckNodePort", "int"),
        13: _f("publishNotReadyAddresses", "bool"),
        14: _ptr("sessionAffinityConfig", "SessionAffinityConfig"),
        19: _rep("ipFamilies"),
        17: _ptr("ipFamilyPolicy", "str"),
        20: _ptr("allocateLoadBalancerNodePorts", "bool"),
        21: _ptr("loadBalancerClass", "str"),
        22: _ptr("internalTrafficPolicy", "str"),
        23: _ptr("trafficDistribution", "str"),
    },
    "ServicePort": {
        1: _f("name"),
        2: _f("protocol"),
        6: _ptr("appProtocol", "str"),
        3: _f("port", "int"),
        4: _f("targetPort", "intstr"),
        5: _f("nodePort", "int"),
    },
    "SessionAffinityConfig": {1: _ptr("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: _ptr("timeoutSeconds", "int")},
    "ServiceStatus": {},
    "ResourceQuota": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "ResourceQuotaSpec"),
        3: _f("status", "ResourceQuotaStatus"),
    },
    "ResourceQuotaSpec": {
        1: _map("hard", "quantity"),
        2: _rep("scopes"),
        3: _ptr("scopeSelector", "ScopeSelector"),
    },
    "ResourceQuotaStatus": {1: _map("hard", "quantity"), 2: _map("used", "quantity")},
    "ScopeSelector": {1: _rep("matchExpressions", "ScopedResourceSelectorRequirement")},
    "ScopedResourceSelectorRequirement": {
        1: _f("scopeName"),
        2: _f("operator"),
        3: _rep("values"),
    },
    "Binding": {1: _f("metadata", "ObjectMeta"), 2: _f("target", "ObjectReference")},
    # ---------------------------------------------------------------- policy/v1
    "Eviction": {
        1: _f("metadata", "ObjectMeta"),
        2: _ptr("deleteOptions", "DeleteOptions"),
    },
    # ---------------------------------------------------------------- authentication/v1
    "TokenRequest": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "TokenRequestSpec"),
        3: _f("status", "TokenRequestStatus"),
    },
    "TokenRequestSpec": {
        1: _rep("audiences"),
        4: _ptr("expirationSeconds", "int"),
        3: _ptr("boundObjectRef", "BoundObjectReference"),
    },
    "BoundObjectReference": {1: _f("kind"), 2: _f("apiVersion"), 3: _f("name"), 4: _f("uid")},
    "TokenRequestStatus": {1: _f("token"), 2: _f("expirationTimestamp", "time")},
    "TokenReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "TokenReviewSpec"),
        3: _f("status", "TokenReviewStatus"),
    },
    "TokenReviewSpec": {1: _f("token"), 2: _rep("audiences")},
    "TokenReviewStatus": {
        1: _f("authenticated", "bool"),
        2: _f("user", "UserInfo"),
        4: _rep("audiences"),
        3: _f("error"),
    },
    "UserInfo": {
        1: _f("username"),
        2: _f("uid"),
        3: _rep("groups"),
        4: _map("extra", "strings"),
    },
    "SelfSubjectReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("status", "SelfSubjectReviewStatus"),
    },
    "SelfSubjectReviewStatus": {1: _f("userInfo", "UserInfo")},
    # ---------------------------------------------------------------- authorization/v1
    "SubjectAccessReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "SubjectAccessReviewSpec"),
        3: _f("status", "SubjectAccessReviewStatus"),
    },
    "SelfSubjectAccessReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "SelfSubjectAccessReviewSpec"),
        3: _f("status", "SubjectAccessReviewStatus"),
    },
    "SubjectAccessReviewSpec": {
        1: _ptr("resourceAttributes", "ResourceAttributes"),
        2: _ptr("nonResourceAttributes", "NonResourceAttributes"),
        3: _f("user"),
        4: _rep("groups"),
        5: _map("extra", "strings"),
        6: _f("uid"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: _ptr("resourceAttributes", "ResourceAttributes"),
        2: _ptr("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: _f("namespace"),
        2: _f("verb"),
        3: _f("group"),
        4: _f("version"),
        5: _f("resource"),
        6: _f("subresource"),
        7: _f("name"),
        8: _ptr("fieldSelector", "FieldSelectorAttributes"),
        9: _ptr("labelSelector", "LabelSelectorAttributes"),
    },
    "FieldSelectorAttributes": {1: _f("rawSelector")},
    "LabelSelectorAttributes": {1: _f("rawSelector")},
    "NonResourceAttributes": {1: _f("path"), 2: _f("verb")},
    "SubjectAccessReviewStatus": {
        1: _f("allowed", "bool"),
        4: _f("denied", "bool"),
        2: _f("reason"),
        3: _f("evaluationError"),
    },
}

# (apiVersion, kind) → top-level message.  LocalSubjectAccessReview shares SAR's layout.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("v1", "Binding"): "Binding",
    ("v1", "DeleteOptions"): "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
    ("policy/v1", "Eviction"): "Eviction",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
}

_UNKNOWN: Schema = {1: _f("typeMeta", "TypeMeta"), 2: _f("raw", "bytes")}
_TYPE_META: Schema = {1: _f("apiVersion"), 2: _f("kind")}


# ------------------------------------------------------------------ wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` for every field of one message, in order;
    varints and fixed-width values as unsigned ints, length-delimited ones as bytes."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ProtobufError("truncated length-delimited field")
            value = buf[pos : pos + size]
            pos += size
        elif wire == _FIXED64:
            if pos + 8 > end:
                raise ProtobufError("truncated fixed64")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == _FIXED32:
            if pos + 4 > end:
                raise ProtobufError("truncated fixed32")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value: int | bytes, what: str) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError(f"{what}: expected a length-delimited string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError(f"{what}: invalid UTF-8") from None


def _time(buf: bytes) -> str | None:
    seconds = nanos = 0
    for number, wire, value in _fields(buf):
        if wire != _VARINT:
            raise ProtobufError("Time: expected varints")
        assert isinstance(value, int)
        if number == 1:
            seconds = _signed(value)
        elif number == 2:
            nanos = _signed(value)
    if seconds == 0 and nanos == 0:
        return None  # the zero time, written as null / left out in JSON
    try:
        when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError("Time: out of range") from None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _intstr(buf: bytes) -> int | str:
    kind = int_val = 0
    str_val = ""
    for number, _wire, value in _fields(buf):
        if number == 1 and isinstance(value, int):
            kind = _signed(value)
        elif number == 2 and isinstance(value, int):
            int_val = _signed(value)
        elif number == 3:
            str_val = _text(value, "IntOrString.strVal")
    return str_val if kind == 1 else int_val


def _quantity(buf: bytes) -> str:
    text = ""
    for number, _wire, value in _fields(buf):
        if number == 1:
            text = _text(value, "Quantity")
    return text


def _scalar(type_: str, wire: int, value: int | bytes, what: str, depth: int) -> Any:
    """One decoded value of ``type_`` (never a map)."""
    if type_ == "str":
        return _text(value, what)
    if type_ == "bytes":
        if not isinstance(value, bytes):
            raise ProtobufError(f"{what}: expected bytes")
        return base64.b64encode(value).decode()
    if type_ in ("int", "bool"):
        if wire != _VARINT:
            raise ProtobufError(f"{what}: expected a varint")
        assert isinstance(value, int)
        return bool(value) if type_ == "bool" else _signed(value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"{what}: expected an embedded message")
    if type_ == "time":
        return _time(value)
    if type_ == "quantity":
        return _quantity(value)
    if type_ == "intstr":
        return _intstr(value)
    if type_ == "strings":  # ExtraValue: a message around a list, a plain list in JSON
        return [_text(v, what) for n, _w, v in _fields(value) if n == 1]
    schema = MESSAGES.get(type_)
    if schema is None:
        raise ProtobufError(f"{what}: no schema for {type_}")
    return decode_message(value, schema, depth + 1)


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value is False or (type(value) is int and value == 0)


def decode_message(buf: bytes, schema: Schema, depth: int = 0) -> dict[str, Any]:
    """Decode one message with ``schema`` into a JSON-shaped dict; unknown fields are
    skipped, zero values of non-pointer scalars left out (as JSON ``omitempty``)."""
    if depth > _MAX_DEPTH:
        raise ProtobufError("message nested too deeply")
    out: dict[str, Any] = {}
    for number, wire, value in _fields(buf):
        fld = schema.get(number)
        if fld is None:
            continue
        what = fld.name
        if fld.type == "map":
            if not isinstance(value, bytes):
                raise ProtobufError(f"{what}: expected a map entry")
            key, item = _map_entry(value, fld.value, what, depth)
            out.setdefault(fld.name, {})[key] = item
        elif fld.repeated:
            if wire == _LEN and fld.type in ("int", "bool"):  # packed
                items: list[Any] = []
                assert isinstance(value, bytes)
                pos = 0
                while pos < len(value):
                    v, pos = _varint(value, pos)
                    items.append(_scalar(fld.type, _VARINT, v, what, depth))
                out.setdefault(fld.name, []).extend(items)
            else:
                out.setdefault(fld.name, []).append(_scalar(fld.type, wire, value, what, depth))
        else:
            item = _scalar(fld.type, wire, value, what, depth)
            prev = out.get(fld.name)
            if isinstance(prev, dict) and isinstance(item, dict):
                prev.update(item)  # a repeated embedded message merges
            elif item is None or (_is_zero(item) and not fld.ptr):
                out.pop(fld.name, None)
            else:
                out[fld.name] = item
    return out


def _map_entry(buf: bytes, value_type: str, what: str, depth: int) -> tuple[str, Any]:
    key = ""
    item: Any = None
    for number, wire, value in _fields(buf):
        if number == 1:
            key = _text(value, f"{what} key")
        elif number == 2:
            item = _scalar(value_type, wire, value, what, depth)
    if item is None:  # absent value: the type's zero value
        item = {"bytes": "", "quantity": "0", "str": "", "strings": []}.get(value_type, {})
    return key, item


# ------------------------------------------------------------------ envelope
def decode_envelope(body: bytes) -> tuple[str, str, bytes]:
    """``(apiVersion, kind, raw)`` of a Kubernetes protobuf body (``k8s\\x00`` + Unknown)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf prefix")
    api_version = kind = ""
    raw = b""
    for number, _wire, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            if not isinstance(value, bytes):
                raise ProtobufError("typeMeta: expected an embedded message")
            meta = decode_message(value, _TYPE_META)
            api_version = str(meta.get("apiVersion", ""))
            kind = str(meta.get("kind", ""))
        elif number == 2:
            if not isinstance(value, bytes):
                raise ProtobufError("raw: expected bytes")
            raw = value
        elif number == 3 and value:
            raise ProtobufError("content encodings are not supported")
    return api_version, kind, raw


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON dict of the object in a protobuf body (``apiVersion`` and ``kind`` first).

    Raises :class:`UnknownKind` for kinds without a schema here, :class:`ProtobufError`
    for malformed bodies.
    """
    api_version, kind, raw = decode_envelope(body)
    name = KINDS.get((api_version, kind))
    if name is None:
        raise UnknownKind(f"{kind or '<no kind>'} ({api_version or '<no apiVersion>'})")
    return {"apiVersion": api_version, "kind": kind, **decode_message(raw, MESSAGES[name])}


def request_body(body: bytes) -> dict[str, Any]:
    """:func:`decode_object` for a request, failures as API errors: 415 for kinds this
    server cannot read in protobuf, 400 for malformed bodies."""
    try:
        return decode_object(body)
    except UnknownKind as exc:
        raise APIError(
            415,
            f"the body of the request was in an unknown format - accepted media types "
            f"include: application/json, application/yaml; protobuf is not supported "
            f"for {exc}",
        ) from None
    except ProtobufError as exc:
        raise bad_request(f"the object provided is unrecognized: protobuf: {exc}") from None
