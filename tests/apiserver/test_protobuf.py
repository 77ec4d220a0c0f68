"""Kubernetes protobuf request bodies: wire format, schema round trips, and the bytes the
pinned kubectl really sends (recorded by a throwaway HTTP server on loopback)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apiserver.conftest import Raw
from vkcompose.apiserver import protobuf
from vkcompose.apiserver.errors import APIError
from vkcompose.apiserver.protobuf import KINDS, MAGIC, MESSAGES, ProtobufError, decode_object

KUBECTL = shutil.which("kubectl", path=os.path.dirname(sys.executable))

# `kubectl create configmap c1 --from-literal=a=b --from-literal=k=v` (kubectl 1.37): every
# non-pointer ObjectMeta field is written, empty (name, generateName, namespace, selfLink,
# uid, resourceVersion, generation 0, creationTimestamp {}), then the two map entries.
GOLDEN_CONFIGMAP = bytes.fromhex(
    "6b3873000a0f0a0276311209436f6e6669674d617012240a120a02633112"
    "001a0022002a0032003800420012060a016112016212060a016b1201761a"
    "002200"
)


# ------------------------------------------------------------------ a tiny encoder
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _len(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _parse_time(text: str) -> int:
    when = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return int(when.timestamp())


def _encode_value(number: int, type_: str, value: Any) -> bytes:
    if type_ == "str":
        return _len(number, value.encode())
    if type_ == "bytes":
        return _len(number, base64.b64decode(value))
    if type_ in ("int", "bool"):
        return _key(number, 0) + _varint(int(value))
    if type_ == "time":
        return _len(number, _key(1, 0) + _varint(_parse_time(value)))
    if type_ == "quantity":
        return _len(number, _len(1, value.encode()))
    if type_ == "intstr":
        if isinstance(value, str):
            inner = _key(1, 0) + _varint(1) + _key(2, 0) + _varint(0) + _len(3, value.encode())
        else:
            inner = _key(1, 0) + _varint(0) + _key(2, 0) + _varint(value) + _len(3, b"")
        return _len(number, inner)
    if type_ == "strings":
        return _len(number, b"".join(_len(1, s.encode()) for s in value))
    return _len(number, encode_message(type_, value))


def encode_message(name: str, obj: dict[str, Any]) -> bytes:
    """go-to-protobuf style: fields in schema order, map entries as key=1/value=2."""
    out = bytearray()
    for number, fld in MESSAGES[name].items():
        if fld.name not in obj:
            continue
        value = obj[fld.name]
        if fld.type == "map":
            for k, v in value.items():
                entry = _len(1, k.encode()) + _encode_value(2, fld.value, v)
                out += _len(number, entry)
        elif fld.repeated:
            for item in value:
                out += _encode_value(number, fld.type, item)
        else:
            out += _encode_value(number, fld.type, value)
    return bytes(out)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _len(1, api_version.encode()) + _len(2, kind.encode())
    return MAGIC + _len(1, type_meta) + _len(2, raw) + _len(3, b"") + _len(4, b"")


# ------------------------------------------------------------------ strategies from the schema
_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
_times = st.integers(1, 253402300799).map(
    lambda s: datetime.datetime.fromtimestamp(s, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
)


def _value_strategy(type_: str, depth: int) -> st.SearchStrategy[Any]:
    if type_ == "str":
        return _text
    if type_ == "bytes":
        return st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode())
    if type_ == "int":
        return st.integers(-(2**63), 2**63 - 1).filter(bool)
    if type_ == "bool":
        return st.just(True)
    if type_ == "time":
        return _times
    if type_ == "quantity":
        return st.sampled_from(["1", "1500m", "1Gi", "0.5", "2e3"])
    if type_ == "intstr":
        return st.integers(1, 2**31 - 1) | _text
    if type_ == "strings":
        return st.lists(_text, max_size=3)
    return message_strategy(type_, depth + 1)


def _field_strategy(fld: protobuf.Field, depth: int) -> st.SearchStrategy[Any]:
    if fld.type == "map":
        return st.dictionaries(_text, _value_strategy(fld.value, depth), min_size=1, max_size=3)
    item = _value_strategy(fld.type, depth)
    if fld.repeated:
        return st.lists(item, min_size=1, max_size=3)
    if fld.ptr and fld.type in ("bool", "int"):
        return st.just(0 if fld.type == "int" else False) | item  # explicit zero kept
    return item


def message_strategy(name: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts of message ``name`` as the decoder must return them (no zero scalars)."""
    fields = {} if depth > 3 else MESSAGES[name]
    return st.fixed_dictionaries(
        {}, optional={f.name: _field_strategy(f, depth) for f in fields.values()}
    )


_TOP = sorted({(v, k) for (v, k), _m in KINDS.items()})


@st.composite
def objects(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    api_version, kind = draw(st.sampled_from(_TOP))
    return api_version, kind, draw(message_strategy(KINDS[(api_version, kind)]))


# ------------------------------------------------------------------ pure tests
def test_golden_configmap_from_kubectl() -> None:
    assert decode_object(GOLDEN_CONFIGMAP) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c1"},
        "data": {"a": "b", "k": "v"},
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects())
def test_round_trip_every_kind(obj: tuple[str, str, dict[str, Any]]) -> None:
    api_version, kind, body = obj
    raw = encode_message(KINDS[(api_version, kind)], body)
    assert decode_object(envelope(api_version, kind, raw)) == {
        "apiVersion": api_version,
        "kind": kind,
        **body,
    }


@given(st.integers(-(2**63), 2**63 - 1))
def test_varints_are_signed_64_bit(n: int) -> None:
    raw = encode_message("DeleteOptions", {"gracePeriodSeconds": n})
    assert decode_object(envelope("v1", "DeleteOptions", raw))["gracePeriodSeconds"] == n


def test_zero_values_follow_json_omitempty() -> None:
    # non-pointer zero scalars are left out; pointer ones (a meaningful false/0) are kept
    raw = encode_message(
        "ServiceAccount", {"metadata": {"name": "x"}, "automountServiceAccountToken": False}
    )
    raw += _len(1, _len(2, b"") + _key(7, 0) + _varint(0))  # generateName "", generation 0
    out = decode_object(envelope("v1", "ServiceAccount", raw))
    assert out["automountServiceAccountToken"] is False
    assert out["metadata"] == {"name": "x"}
    token = encode_message("TokenRequest", {"spec": {"expirationSeconds": 0}})
    assert decode_object(envelope("authentication.k8s.io/v1", "TokenRequest", token))["spec"] == {
        "expirationSeconds": 0
    }


def test_unknown_fields_and_wire_types_are_skipped() -> None:
    extra = (
        _key(99, 0)
        + _varint(7)
        + _key(98, 1)
        + b"\x00" * 8
        + _key(97, 5)
        + b"\x00" * 4
        + _len(96, b"zz")
    )
    raw = extra + encode_message("ConfigMap", {"metadata": {"name": "c"}, "data": {"k": "v"}})
    assert decode_object(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "v"},
    }


def test_int_or_string_time_and_quantity() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 9}]}}
    out = decode_object(envelope("v1", "Service", encode_message("Service", svc)))
    assert [p["targetPort"] for p in out["spec"]["ports"]] == ["http", 9]
    meta = {"metadata": {"name": "n", "creationTimestamp": "2026-01-02T03:04:05Z"}}
    out = decode_object(envelope("v1", "Namespace", encode_message("Namespace", meta)))
    assert out["metadata"]["creationTimestamp"] == "2026-01-02T03:04:05Z"
    empty_time = _len(1, _len(1, b"n") + _len(8, b""))
    assert decode_object(envelope("v1", "Namespace", empty_time))["metadata"] == {"name": "n"}
    quota = {"spec": {"hard": {"cpu": "1500m"}}}
    out = decode_object(envelope("v1", "ResourceQuota", encode_message("ResourceQuota", quota)))
    assert out["spec"]["hard"] == {"cpu": "1500m"}


def test_map_entries_without_value_get_the_zero_value() -> None:
    raw = _len(2, _len(1, b"k")) + _len(3, _len(1, b"b"))
    assert decode_object(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {"k": ""},
        "binaryData": {"b": ""},
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        MAGIC + b"\x0a",  # truncated length
        MAGIC + b"\x0a\x05ab",  # length past the end
        MAGIC + _len(1, _len(1, b"v1") + _len(2, b"ConfigMap")) + _len(2, b"\x12\x03\x0a"),
        MAGIC + _len(1, _len(1, b"v1") + _len(2, b"ConfigMap")) + _len(2, b"\x0b"),  # group
        MAGIC + _len(1, _len(1, b"v1") + _len(2, b"ConfigMap")) + _len(2, _len(1, b"\x0a\x01\xff")),
        MAGIC + _len(1, _len(1, b"v1") + _len(2, b"ConfigMap")) + _len(2, _key(4, 2) + b"\x00"),
        MAGIC + b"\xff" * 11,  # varint too long
    ],
)
def test_malformed_bodies_raise_protobuf_error(body: bytes) -> None:
    with pytest.raises(ProtobufError):
        decode_object(body)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_protobuf_error(tail: bytes) -> None:
    for body in (MAGIC + tail, envelope("v1", "Service", tail), envelope("v1", "Secret", tail)):
        with contextlib.suppress(ProtobufError):
            decode_object(body)


def test_request_body_maps_errors_to_statuses() -> None:
    with pytest.raises(APIError) as unknown:
        protobuf.request_body(envelope("v1", "Pod", b""))
    assert unknown.value.code == 415 and "Pod" in unknown.value.message
    with pytest.raises(APIError) as bad:
        protobuf.request_body(b"not protobuf")
    assert bad.value.code == 400


# ------------------------------------------------------------------ over HTTP
PB = "application/vnd.kubernetes.protobuf"


@pytest.mark.anyio
async def test_protobuf_bodies_over_http(raw: Raw) -> None:
    status, body = await raw.request(
        "POST", "/api/v1/namespaces/default/configmaps", GOLDEN_CONFIGMAP, content_type=PB
    )
    assert status == 201, body
    assert body["data"] == {"a": "b", "k": "v"} and body["metadata"]["uid"]
    status, body = await raw.request(
        "POST", "/api/v1/namespaces/default/pods", envelope("v1", "Pod", b""), content_type=PB
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType", body
    status, body = await raw.request(
        "POST", "/api/v1/namespaces/default/configmaps", MAGIC + b"\x0a\x09", content_type=PB
    )
    assert status == 400 and body["reason"] == "BadRequest", body
    # the object's kind is still checked against the URL, as for JSON
    secret = envelope("v1", "Secret", encode_message("Secret", {"metadata": {"name": "s"}}))
    status, body = await raw.request(
        "POST", "/api/v1/namespaces/default/configmaps", secret, content_type=PB
    )
    assert status == 400, body


# ------------------------------------------------------------------ what kubectl sends
@dataclass
class Recorder:
    """A plain-HTTP server on loopback recording request bodies; answers every write with
    the decoded object as JSON (201), every read with 404."""

    bodies: list[tuple[str, str, str, bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "GET":
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        self.bodies.append((request.method, request.path, request.content_type, body))
        try:
            obj = decode_object(body)
        except ProtobufError:
            return web.json_response({"kind": "Status", "code": 400}, status=400)
        return web.Response(body=orjson.dumps(obj), status=201, content_type="application/json")


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[tuple[Recorder, dict[str, str]]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]\n"
        "current-context: c\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)}
    try:
        yield rec, env
    finally:
        await runner.cleanup()


async def _kubectl(env: dict[str, str], *args: str) -> None:
    assert KUBECTL, "the pinned kubectl binary is not installed"
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.anyio
async def test_kubectl_sends_protobuf_the_schema_reads(
    recorder: tuple[Recorder, dict[str, str]], tmp_path: Path
) -> None:
    rec, env = recorder
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)))
    cases: list[tuple[list[str], dict[str, Any]]] = [
        (
            ["create", "configmap", "c1", "--from-literal=a=b", "--from-literal=k=v"],
            {"metadata": {"name": "c1"}, "data": {"a": "b", "k": "v"}},
        ),
        (
            ["create", "configmap", "c2", f"--from-file=bin={blob}"],
            {
                "metadata": {"name": "c2"},
                "binaryData": {"bin": base64.b64encode(bytes(range(256))).decode()},
            },
        ),
        (
            ["create", "secret", "generic", "s1", "--from-literal=p=q", "--type=Opaque"],
            {"metadata": {"name": "s1"}, "data": {"p": "cQ=="}, "type": "Opaque"},
        ),
        (["create", "namespace", "n1"], {"metadata": {"name": "n1"}, "spec": {}, "status": {}}),
        (["create", "serviceaccount", "sa1"], {"metadata": {"name": "sa1"}}),
        (
            ["create", "token", "sa1", "--audience=a1", "--audience=a2", "--duration=1h"],
            {
                "metadata": {},
                "spec": {"audiences": ["a1", "a2"], "expirationSeconds": 3600},
                "status": {},
            },
        ),
        (
            ["create", "token", "sa1", "--bound-object-kind=Secret", "--bound-object-name=s1"],
            {
                "metadata": {},
                "spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s1"}},
                "status": {},
            },
        ),
        (["auth", "whoami"], {"metadata": {}, "status": {"userInfo": {}}}),
        (
            ["create", "service", "clusterip", "svc1", "--tcp=80:8080", "--tcp=443:https"],
            {
                "metadata": {"name": "svc1", "labels": {"app": "svc1"}},
                "spec": {
                    "ports": [
                        {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                        {
                            "name": "443-https",
                            "protocol": "TCP",
                            "port": 443,
                            "targetPort": "https",
                        },
                    ],
                    "selector": {"app": "svc1"},
                    "type": "ClusterIP",
                },
                "status": {},
            },
        ),
        (
            ["create", "service", "nodeport", "svc2", "--tcp=81:8081", "--node-port=30001"],
            {
                "metadata": {"name": "svc2", "labels": {"app": "svc2"}},
                "spec": {
                    "ports": [
                        {
                            "name": "81-8081",
                            "protocol": "TCP",
                            "port": 81,
                            "targetPort": 8081,
                            "nodePort": 30001,
                        }
                    ],
                    "selector": {"app": "svc2"},
                    "type": "NodePort",
                },
                "status": {},
            },
        ),
        (
            ["create", "quota", "q1", "--hard=pods=2,cpu=1500m,memory=1Gi", "--scopes=BestEffort"],
            {
                "metadata": {"name": "q1"},
                "spec": {
                    "hard": {"cpu": "1500m", "memory": "1Gi", "pods": "2"},
                    "scopes": ["BestEffort"],
                },
                "status": {},
            },
        ),
    ]
    for args, expected in cases:
        rec.bodies.clear()
        await _kubectl(env, *args)
        posts = [b for b in rec.bodies if b[0] == "POST"]
        assert len(posts) == 1, (args, rec.bodies)
        _method, _path, ctype, body = posts[0]
        assert ctype == PB, args
        got = decode_object(body)
        assert {k: v for k, v in got.items() if k not in ("apiVersion", "kind")} == expected, args
    rec.bodies.clear()
    await _kubectl(env, "create", "configmap", "c1", "--from-literal=a=b", "--from-literal=k=v")
    assert rec.bodies[0][3] == GOLDEN_CONFIGMAP
