"""Downward API field and resource values, checked against the kubelet's rules and the docs."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.podspec.fieldpath import (
    FieldPathError,
    field_value,
    format_labels_file,
    go_quote,
    resource_value,
    split_subscript,
)

POD = {
    "metadata": {
        "name": "dapi-envars-fieldref",
        "namespace": "default",
        "uid": "1a2b",
        "labels": {"zone": "us-est-coast", "cluster": "test-cluster1", "rack": "rack-22"},
        "annotations": {"build": "two", "builder": "john-doe"},
    },
    "spec": {
        "nodeName": "vk-1",
        "serviceAccountName": "default",
        "containers": [
            {
                "name": "test-container",
                "resources": {
                    "requests": {"memory": "32Mi", "cpu": "125m"},
                    "limits": {"memory": "64Mi", "cpu": "250m"},
                },
            },
            {"name": "no-limits", "resources": {"requests": {"cpu": "0.5"}}},
        ],
        "initContainers": [{"name": "init", "resources": {"limits": {"cpu": "2"}}}],
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "dapi-envars-fieldref"),
        ("metadata.namespace", "default"),
        ("metadata.uid", "1a2b"),
        ("metadata.labels['zone']", "us-est-coast"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['builder']", "john-doe"),
        ("spec.nodeName", "vk-1"),
        ("spec.serviceAccountName", "default"),
        ("status.hostIP", "10.0.0.1"),
        ("status.hostIPs", "10.0.0.1,fd00::1"),
        ("status.podIP", "10.244.0.7"),
        ("status.podIPs", "10.244.0.7,fd00:244::7"),
    ],
)
def test_field_values(path: str, expected: str) -> None:
    got = field_value(
        POD, path, host_ips=["10.0.0.1", "fd00::1"], pod_ips=["10.244.0.7", "fd00:244::7"]
    )
    assert got == expected


def test_labels_and_annotations_files_as_in_the_docs() -> None:
    """downwardAPI volume files of the docs' ``kubernetes-downwardapi-volume-example``."""
    assert field_value(POD, "metadata.labels") == (
        'cluster="test-cluster1"\nrack="rack-22"\nzone="us-est-coast"'
    )
    assert field_value(POD, "metadata.annotations") == 'build="two"\nbuilder="john-doe"'
    assert field_value({"metadata": {}}, "metadata.labels") == ""


@pytest.mark.parametrize(
    "path",
    ["spec.restartPolicy", "status.phase", "metadata.name['x']", "spec.containers[0].image"],
)
def test_unsupported_paths(path: str) -> None:
    with pytest.raises(FieldPathError):
        field_value(POD, path, host_ips=["1.2.3.4"], pod_ips=["5.6.7.8"])


def test_unknown_ips_are_errors_not_empty_strings() -> None:
    for path in ("status.podIP", "status.podIPs"):
        with pytest.raises(FieldPathError, match="pod's IP"):
            field_value(POD, path, host_ips=["10.0.0.1"])
    for path in ("status.hostIP", "status.hostIPs"):
        with pytest.raises(FieldPathError, match="node's IP"):
            field_value(POD, path, pod_ips=["10.0.0.2"])
    with pytest.raises(FieldPathError, match="unsupported pod version"):
        field_value(POD, "metadata.name", api_version="v2")


def test_split_subscript() -> None:
    assert split_subscript("metadata.annotations['myKey']") == ("metadata.annotations", "myKey")
    assert split_subscript("metadata.annotations['a[b]c']") == ("metadata.annotations", "a[b]c")
    assert split_subscript("metadata.labels['']") == ("metadata.labels", "")
    assert split_subscript("metadata.labels") == ("metadata.labels", None)
    assert split_subscript("['x']") == ("['x']", None)


@pytest.mark.parametrize(
    ("container", "resource", "divisor", "expected"),
    [
        # dapi-envars-resourcefieldref (no divisor): the docs print 1, 1, 33554432, 67108864.
        ("test-container", "requests.cpu", None, "1"),
        ("test-container", "limits.cpu", None, "1"),
        ("test-container", "requests.memory", None, "33554432"),
        ("test-container", "limits.memory", None, "67108864"),
        # dapi-volume-resources: divisors 1m and 1Mi.
        ("test-container", "limits.cpu", "1m", "250"),
        ("test-container", "requests.cpu", "1m", "125"),
        ("test-container", "limits.memory", "1Mi", "64"),
        ("test-container", "requests.memory", "1Mi", "32"),
        # rounding up
        ("test-container", "requests.memory", "1Gi", "1"),
        ("test-container", "requests.memory", "1M", "34"),
        ("test-container", "requests.cpu", "0", "1"),
        # missing limits default to the node's allocatable
        ("no-limits", "limits.cpu", None, "4"),
        ("no-limits", "limits.memory", "1Gi", "8"),
        ("no-limits", "limits.ephemeral-storage", "1Gi", "100"),
        ("no-limits", "requests.cpu", "1m", "500"),
        ("no-limits", "requests.memory", None, "0"),
        ("no-limits", "limits.hugepages-2Mi", None, "0"),
        ("init", "limits.cpu", "1m", "2000"),
    ],
)
def test_resource_values(container: str, resource: str, divisor: str | None, expected: str) -> None:
    allocatable = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110"}
    assert resource_value(POD, container, resource, divisor, allocatable) == expected


def test_resource_value_without_allocatable_and_with_container_dict() -> None:
    assert resource_value(POD, "no-limits", "limits.cpu") == "0"
    container = {"name": "x", "resources": {"limits": {"hugepages-2Mi": "4Mi"}}}
    assert resource_value(POD, container, "limits.hugepages-2Mi", "2Mi") == "2"


@pytest.mark.parametrize("resource", ["limits.gpu", "cpu", "limits.", "claims.cpu"])
def test_unsupported_resources(resource: str) -> None:
    with pytest.raises(FieldPathError, match="unsupported container resource"):
        resource_value(POD, "test-container", resource)


def test_unknown_container_and_bad_quantity() -> None:
    with pytest.raises(FieldPathError, match="container nope not found"):
        resource_value(POD, "nope", "limits.cpu")
    with pytest.raises(FieldPathError):
        resource_value(POD, "test-container", "limits.cpu", "one")


@given(
    st.integers(min_value=0, max_value=10**7),
    st.sampled_from(["1m", "10m", "100m", "1", "2", "1k"]),
)
def test_cpu_is_the_ceiling_of_millis_over_divisor(millis: int, divisor: str) -> None:
    div = {"1m": 1, "10m": 10, "100m": 100, "1": 1000, "2": 2000, "1k": 10**6}[divisor]
    container = {"name": "c", "resources": {"requests": {"cpu": f"{millis}m"}}}
    got = int(resource_value({}, container, "requests.cpu", divisor))
    assert got == -(-millis // div)
    assert got * div >= millis > (got - 1) * div or millis == got == 0


@given(
    st.integers(min_value=0, max_value=2**20),
    st.sampled_from(["Ki", "Mi", "Gi", "k", "M", "G", ""]),
    st.sampled_from(["1", "1Ki", "1Mi", "1Gi", "1k", "1M", "1G"]),
)
def test_memory_is_the_ceiling_of_bytes_over_divisor(n: int, suffix: str, divisor: str) -> None:
    units = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    container = {"name": "c", "resources": {"limits": {"memory": f"{n}{suffix}"}}}
    got = int(resource_value({}, container, "limits.memory", divisor))
    assert got == math.ceil(Fraction(n * units[suffix], units[divisor[1:]]))


def test_huge_values_round_through_float64_like_the_kubelet() -> None:
    """The kubelet divides in float64: beyond 2**53 the result is the float's integer."""
    container = {"name": "c", "resources": {"limits": {"memory": "4611686019G"}}}
    assert resource_value({}, container, "limits.memory") == "4611686019000000512"


def test_go_quote_matches_go() -> None:
    assert go_quote("") == '""'
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\x00\x1f\x7f\n\t\r\a\b\f\v") == '"\\x00\\x1f\\x7f\\n\\t\\r\\a\\b\\f\\v"'
    assert go_quote("é日本\U0001f600") == '"é日本\U0001f600"'
    assert go_quote("\u00a0\u200b\u2028\U000e0001") == '"\\u00a0\\u200b\\u2028\\U000e0001"'
    assert go_quote("\ud800") == '"\ufffd"'


def go_unquote(quoted: str) -> str:
    """A small reference decoder of Go's quoted-string syntax (for the round-trip property)."""
    assert quoted[0] == quoted[-1] == '"'
    body, out, i = quoted[1:-1], [], 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            assert ch != '"'
            out.append(ch)
            i += 1
            continue
        kind = body[i + 1]
        if kind in simple:
            out.append(simple[kind])
            i += 2
        elif kind in '"\\':
            out.append(kind)
            i += 2
        else:
            width = {"x": 2, "u": 4, "U": 8}[kind]
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
    return "".join(out)


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"])))
def test_go_quote_round_trips(s: str) -> None:
    quoted = go_quote(s)
    assert go_unquote(quoted) == s
    assert quoted.isprintable()


@given(st.dictionaries(st.from_regex(r"[a-z0-9./-]{1,12}", fullmatch=True), st.text(max_size=8)))
def test_labels_file_is_sorted_one_line_per_key(labels: dict[str, str]) -> None:
    text = format_labels_file(labels)
    lines = text.split("\n") if labels else []
    assert len(lines) == len(labels)
    assert [line.split("=", 1)[0] for line in lines] == sorted(labels)
