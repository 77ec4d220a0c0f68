"""SpecReuse: a pod watch line decodes to what orjson gives, reusing the held spec."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as stx

from vkcompose.node.plan import PodKey
from vkcompose.node.spec_reuse import SpecReuse

# strings that look like the markers SpecReuse splits at, or break naive scanners
TRICKY = stx.sampled_from(
    [',"spec":{', '},"status":', '"}', "\\", '\\"', "{", "}", "[", "]", "é", "\n", ""]
)
TEXT = stx.lists(stx.one_of(TRICKY, stx.text(max_size=6)), max_size=4).map("".join)
KEYS = stx.one_of(stx.sampled_from(["spec", "status", "name", "image", "items"]), TEXT)
SCALARS = stx.one_of(stx.none(), stx.booleans(), stx.integers(-(2**40), 2**40), TEXT)
JSONISH = stx.recursive(
    SCALARS,
    lambda inner: stx.one_of(
        stx.lists(inner, max_size=3), stx.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=12,
)
SPECS = stx.dictionaries(KEYS, JSONISH, max_size=4)
METADATA = stx.fixed_dictionaries(
    {"name": TEXT, "resourceVersion": stx.integers(1, 10**6).map(str)},
    optional={
        "extra": JSONISH,  # not in a pod's metadata: SpecReuse must not rely on that
        "namespace": TEXT,
        "labels": stx.dictionaries(TEXT, TEXT, max_size=3),
        "annotations": stx.dictionaries(TEXT, TEXT, max_size=3),
    },
)


@stx.composite
def pod_events(draw: stx.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A watch event of a pod (keys in an order a server may use) and its spec."""
    spec = draw(SPECS)
    fields = {"metadata": draw(METADATA), "spec": spec, "status": draw(SPECS)}
    # mostly as servers write pods (metadata, spec, status), sometimes otherwise
    canonical = ("metadata", "spec", "status")
    others = [("spec", "metadata", "status"), ("metadata", "status", "spec")]
    order = draw(stx.one_of(stx.just(canonical), stx.sampled_from(others)))
    both = frozenset({"spec", "status"})
    keep = draw(stx.one_of(stx.just(both), stx.frozensets(stx.sampled_from(sorted(both)))))
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod"}
    for name in order:
        if name == "metadata" or name in keep:
            obj[name] = fields[name]
    etype = draw(stx.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]))
    return {"type": etype, "object": obj}, spec


def _key(event: dict[str, Any]) -> PodKey:
    meta = event["object"]["metadata"]
    return (meta.get("namespace") or "default", meta.get("name") or "")


@given(pod_events(), stx.sampled_from(["same", "equal copy", "other", "none"]), SPECS)
def test_decodes_as_orjson_and_reuses_only_an_equal_spec(
    sample: tuple[dict[str, Any], dict[str, Any]], held_kind: str, other: dict[str, Any]
) -> None:
    event, spec = sample
    line = orjson.dumps(event)
    held = {"same": spec, "equal copy": copy.deepcopy(spec), "other": other, "none": None}[
        held_kind
    ]
    asked: list[PodKey] = []

    def lookup(key: PodKey) -> dict[str, Any] | None:
        asked.append(key)
        return held

    decode = SpecReuse(lookup)
    got = decode(line)
    assert got == orjson.loads(line)
    assert asked in ([], [_key(event)])
    obj = got["object"]
    if decode.reused:
        assert obj["spec"] is held
    canonical = (
        list(event["object"])[2:] == ["metadata", "spec", "status"]  # after apiVersion, kind
        and b'},"status":' not in orjson.dumps(spec)
        and b',"spec":{' not in orjson.dumps(obj["metadata"])
        and event["type"] != "ADDED"  # a new pod: decoded whole, nothing is held for it
        and line.count(b'"object":') == 1
    )
    if canonical and held is not None and orjson.dumps(held) == orjson.dumps(spec):
        assert decode.reused == 1  # the held spec is reused whenever it can be


@given(stx.binary(max_size=40), stx.sampled_from([b',"spec":{', b'},"status":', b""]))
def test_a_broken_line_raises_as_orjson_does(noise: bytes, marker: bytes) -> None:
    line = b'{"type":"MODIFIED","object":{"metadata":{"name":"p"}' + marker + noise
    try:
        expected: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        expected = orjson.JSONDecodeError
    try:
        got: Any = SpecReuse(lambda key: None)(line)
    except orjson.JSONDecodeError:
        got = orjson.JSONDecodeError
    assert got == expected


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def test_lines_that_split_but_are_not_one_pod_are_decoded_whole() -> None:
    spec = {"x": 1}
    lines = [
        # a second "object" key: orjson keeps the last one, which has no spec
        b'{"type":"MODIFIED","object":{"metadata":{"name":"p"},"spec":{"x":1},"status":{}},'
        b'"object":{"metadata":{"name":"p"},"status":{}}}',
        # a held spec deeper than orjson encodes
        orjson.dumps(
            {"type": "MODIFIED", "object": {"metadata": {"name": "p"}, "spec": {}, "status": {}}}
        ),
    ]
    for line, held in zip(lines, [spec, _nested(300)], strict=True):
        decode = SpecReuse(lambda key, held=held: held)
        assert decode(line) == orjson.loads(line)
        assert decode.reused == 0


def test_metadata_deeper_than_orjson_encodes_is_decoded_whole() -> None:
    deep = b'{"x":' * 300 + b"{}" + b"}" * 300  # orjson decodes it, but cannot encode it
    line = (
        b'{"type":"MODIFIED","object":{"metadata":{"name":"p","deep":'
        + deep
        + b'},"spec":{"x":1},"status":{}}}'
    )
    decode = SpecReuse(lambda key: {"x": 1})
    assert decode(line) == orjson.loads(line)
    assert decode.reused == 0


def test_a_changed_spec_is_decoded_and_not_the_held_one() -> None:
    held = {"containers": [{"name": "app", "image": "x:1"}]}
    new = {"containers": [{"name": "app", "image": "x:2"}]}
    line = orjson.dumps(
        {"type": "MODIFIED", "object": {"metadata": {"name": "p"}, "spec": new, "status": {}}}
    )
    decode = SpecReuse(lambda key: held)
    got = decode(line)
    assert got["object"]["spec"] == new
    assert got["object"]["spec"] is not held
    assert decode.reused == 0


def test_a_nested_spec_and_status_are_not_taken_for_the_pod_s() -> None:
    # the first ',"spec":{' and the '},"status":' after it are both inside another member
    for obj in (
        {"spec": {"a": 1, "inner": {"b": 0, "spec": {"x": 1}, "status": {}}}, "status": {}},
        {"metadata": {"name": "p"}, "status": {"a": 1, "spec": {"x": 1}, "status": {}}},
        {"metadata": {"name": "p", "x": 1, "spec": {"x": 1}, "status": 2}, "status": {}},
    ):
        line = orjson.dumps({"type": "MODIFIED", "object": obj})
        decode = SpecReuse(lambda key: {"x": 1})
        assert decode(line) == orjson.loads(line)
        assert decode.reused == 0
