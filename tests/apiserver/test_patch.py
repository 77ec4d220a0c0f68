"""JSON merge patch, JSON patch and strategic merge patch against upstream examples."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.apiserver.patch import (
    MERGE_KEYS,
    MergeList,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    merge_schema,
)

# --- JSON values for hypothesis ----------------------------------------------------------------

_keys = st.text(alphabet="abcxyz/~", min_size=1, max_size=3)
_scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="ab", max_size=2))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=12,
)
_objects = st.dictionaries(_keys, _json, max_size=4)


# --- RFC 7386 -----------------------------------------------------------------------------------
# Appendix A of RFC 7386 (https://www.rfc-editor.org/rfc/rfc7386#appendix-A).


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, result: Any) -> None:
    assert apply_merge_patch(target, patch) == result


def _merge_diff(src: Any, dst: Any) -> Any:
    """The RFC 7386 patch that turns ``src`` into ``dst`` (both null-free)."""
    if not (isinstance(src, dict) and isinstance(dst, dict)):
        return dst
    patch: dict[str, Any] = {k: None for k in src if k not in dst}
    for k, v in dst.items():
        if k not in src:
            patch[k] = v
        elif src[k] != v or type(src[k]) is not type(v):
            patch[k] = _merge_diff(src[k], v)
    return patch


@given(_objects, _objects)
def test_merge_patch_applies_its_diff(src: dict[str, Any], dst: dict[str, Any]) -> None:
    assert apply_merge_patch(src, _merge_diff(src, dst)) == dst


@given(_objects, _objects)
def test_merge_patch_is_idempotent_and_pure(target: dict[str, Any], patch: dict[str, Any]) -> None:
    before_t, before_p = copy.deepcopy(target), copy.deepcopy(patch)
    once = apply_merge_patch(target, patch)
    assert apply_merge_patch(once, patch) == once
    assert target == before_t and patch == before_p


def test_merge_patch_result_shares_nothing() -> None:
    target = {"metadata": {"labels": {"a": "b"}}, "spec": {"x": [1]}}
    out = apply_merge_patch(target, {"status": {"phase": "Running"}})
    out["metadata"]["labels"]["a"] = "changed"
    out["spec"]["x"].append(2)
    assert target == {"metadata": {"labels": {"a": "b"}}, "spec": {"x": [1]}}


# --- RFC 6902 -----------------------------------------------------------------------------------
# Examples from RFC 6902 appendix A (https://www.rfc-editor.org/rfc/rfc6902#appendix-A).


@pytest.mark.parametrize(
    ("doc", "ops", "result"),
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
         {"baz": "qux", "foo": "bar"}),  # A.1
        ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
         {"foo": ["bar", "qux", "baz"]}),  # A.2
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),  # A.3
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
         {"foo": ["bar", "baz"]}),  # A.4
        ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
         {"baz": "boo", "foo": "bar"}),  # A.5
        ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
         [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
         {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),  # A.6
        ({"foo": ["all", "grass", "cows", "eat"]},
         [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
         {"foo": ["all", "cows", "eat", "grass"]}),  # A.7
        ({"baz": "qux", "foo": ["a", 2, "c"]},
         [{"op": "test", "path": "/baz", "value": "qux"},
          {"op": "test", "path": "/foo/1", "value": 2}],
         {"baz": "qux", "foo": ["a", 2, "c"]}),  # A.8
        ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
         {"foo": "bar", "child": {"grandchild": {}}}),  # A.10
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
         {"foo": "bar", "baz": "qux"}),  # A.11
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
         {"foo": ["bar", ["abc", "def"]]}),  # A.16
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
         {"/": 9, "~1": 10}),  # A.14
        ({"a/b": 1, "m~n": 2}, [{"op": "remove", "path": "/a~1b"},
                                {"op": "replace", "path": "/m~0n", "value": 3}], {"m~n": 3}),
        ({"foo": 1}, [{"op": "copy", "from": "/foo", "path": "/bar"}], {"foo": 1, "bar": 1}),
        ({"foo": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
        ({"a": {"b": [1]}},
         [{"op": "add", "path": "/metadata", "value": {}},
          {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}],
         {"a": {"b": [1]}, "metadata": {"labels": {"x": "y"}}}),
    ],
)  # fmt: skip
def test_json_patch_rfc6902_examples(doc: Any, ops: list[Any], result: Any) -> None:
    before = copy.deepcopy(doc)
    assert apply_json_patch(doc, ops) == result
    assert doc == before


@pytest.mark.parametrize(
    ("doc", "ops"),
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),  # A.12
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),  # A.15
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),  # A.9
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}]),  # 1 is not true
        ({"a": [1]}, [{"op": "add", "path": "/a/5", "value": 2}]),
        ({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 2}]),
        ({"a": [1]}, [{"op": "remove", "path": "/a/1"}]),
        ({"a": 1}, [{"op": "remove", "path": "/b"}]),
        ({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}]),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/c"}]),
        ({"a": 1}, [{"op": "frobnicate", "path": "/a"}]),
        ({"a": 1}, [{"op": "add", "path": "a", "value": 1}]),
        ({"a": 1}, [{"op": "add", "path": "/b"}]),
        ({"a": 1}, [{"op": "copy", "path": "/b"}]),
        ({"a": 1}, [{"op": "move", "from": "/x", "path": "/b"}]),
        ({"a": 1}, [{"path": "/a"}]),
        ({"a": 1}, {"op": "add"}),
        ({"a": 1}, ["nope"]),
    ],
)
def test_json_patch_errors(doc: Any, ops: Any) -> None:
    with pytest.raises(PatchError):
        apply_json_patch(doc, ops)


def test_json_patch_is_atomic() -> None:
    doc = {"a": 1}
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "add", "path": "/b", "value": 2},
                               {"op": "test", "path": "/a", "value": 2}])  # fmt: skip
    assert doc == {"a": 1}


def _pointer(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


@given(_objects, _keys, _json)
def test_json_patch_add_then_remove_is_identity(doc: dict[str, Any], key: str, value: Any) -> None:
    doc.pop(key, None)
    path = _pointer([key])
    added = apply_json_patch(doc, [{"op": "add", "path": path, "value": value}])
    assert apply_json_patch(added, [{"op": "test", "path": path, "value": value}]) == added
    assert apply_json_patch(added, [{"op": "remove", "path": path}]) == doc


@given(st.lists(_json, min_size=1, max_size=5), st.data())
def test_json_patch_array_insert_remove(items: list[Any], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(items)))
    doc = {"l": items}
    inserted = apply_json_patch(doc, [{"op": "add", "path": f"/l/{i}", "value": "new"}])
    assert inserted["l"][i] == "new" and len(inserted["l"]) == len(items) + 1
    assert apply_json_patch(inserted, [{"op": "remove", "path": f"/l/{i}"}]) == doc
    appended = apply_json_patch(doc, [{"op": "add", "path": "/l/-", "value": "end"}])
    assert appended["l"] == [*items, "end"]


@given(_objects, _keys, _keys)
def test_json_patch_move_is_copy_then_remove(doc: dict[str, Any], a: str, b: str) -> None:
    if a == b or a not in doc:
        return
    moved = apply_json_patch(doc, [{"op": "move", "from": _pointer([a]), "path": _pointer([b])}])
    copied = apply_json_patch(
        doc,
        [
            {"op": "copy", "from": _pointer([a]), "path": _pointer([b])},
            {"op": "remove", "path": _pointer([a])},
        ],
    )
    assert moved == copied


# --- strategic merge patch ------------------------------------------------------------------------

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "p",
        "labels": {"app": "web"},
        "finalizers": ["a", "b"],
        "ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs"}],
    },
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "nginx",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            {"name": "side", "image": "busybox"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
        "tolerations": [{"key": "x", "operator": "Exists"}],
    },
    "status": {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False"},
        ],
        "containerStatuses": [{"name": "main", "ready": False}, {"name": "side", "ready": False}],
    },
}


def smp(patch: dict[str, Any], target: dict[str, Any] | None = None, kind: str = "Pod") -> Any:
    original = POD if target is None else target
    before = copy.deepcopy(original)
    before_patch = copy.deepcopy(patch)
    out = apply_strategic_merge_patch(original, patch, kind)
    assert original == before and patch == before_patch  # inputs are never mutated
    return out


def test_smp_adds_container_by_name() -> None:
    # kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
    # ("Use a strategic merge patch to update a Deployment"): the patch's container is
    # merged into the list instead of replacing it.
    out = smp({"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["patch-demo-ctr-2", "main", "side"]
    # a JSON merge patch of the same body replaces the list
    merged = apply_merge_patch(
        POD, {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}
    )
    assert [c["name"] for c in merged["spec"]["containers"]] == ["patch-demo-ctr-2"]


def test_smp_tolerations_are_replaced() -> None:
    # Same page: "the tolerations list ... was replaced, not merged" (no patchStrategy).
    out = smp({"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype"}]}})
    assert out["spec"]["tolerations"] == [{"effect": "NoSchedule", "key": "disktype"}]


def test_smp_merges_nested_lists_by_their_keys() -> None:
    out = smp(
        {
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "nginx:2",
                        "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "cfg", "configMap": {"name": "c2"}}],
            }
        }
    )
    main = out["spec"]["containers"][0]
    assert main["image"] == "nginx:2"
    assert main["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert main["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]
    assert main["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert out["spec"]["containers"][1] == POD["spec"]["containers"][1]
    assert out["spec"]["volumes"][1] == {"name": "cfg", "configMap": {"name": "c2"}}


def test_smp_status_conditions_by_type_and_statuses_atomic() -> None:
    out = smp(
        {
            "status": {
                "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "ready": True}],
                "phase": "Running",
            }
        }
    )
    assert out["status"]["conditions"] == [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True"},
    ]
    # containerStatuses carries no patchStrategy in k8s.io/api/core/v1/types.go: replaced.
    assert out["status"]["containerStatuses"] == [{"name": "main", "ready": True}]
    assert out["status"]["phase"] == "Running"


def test_smp_patch_delete_in_list_and_map() -> None:
    # community/contributors/devel/sig-api-machinery/strategic-merge-patch.md, "$patch: delete"
    out = smp({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["main"]
    out = smp({"metadata": {"labels": {"$patch": "delete"}}})
    assert out["metadata"]["labels"] == {}
    with pytest.raises(PatchError):
        smp({"spec": {"containers": [{"$patch": "delete"}]}})


def test_smp_patch_replace_in_list_and_map() -> None:
    # strategic-merge-patch.md, "$patch: replace"
    out = smp({"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}})
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    out = smp({"metadata": {"labels": {"$patch": "replace", "new": "v"}}})
    assert out["metadata"]["labels"] == {"new": "v"}
    out = smp({"metadata": {"labels": {"$patch": "merge", "new": "v"}}})
    assert out["metadata"]["labels"] == {"app": "web", "new": "v"}
    with pytest.raises(PatchError, match="unknown patch type"):
        smp({"metadata": {"labels": {"$patch": "frob"}}})
    with pytest.raises(PatchError, match="unknown patch type"):
        smp({"spec": {"containers": [{"name": "main", "$patch": "frob"}]}})


def test_smp_null_deletes_and_missing_merge_key() -> None:
    out = smp({"metadata": {"labels": {"app": None}}, "spec": {"tolerations": None}})
    assert out["metadata"]["labels"] == {}
    assert "tolerations" not in out["spec"]
    with pytest.raises(PatchError, match="does not contain declared merge key: name"):
        smp({"spec": {"containers": [{"image": "x"}]}})
    with pytest.raises(PatchError):
        smp({"spec": {"containers": ["x"]}})
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(POD, ["x"], "Pod")  # type: ignore[arg-type]


def test_smp_finalizers_primitive_set() -> None:
    # strategic-merge-patch.md, "$deleteFromPrimitiveList"
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b"]
    out = smp({"metadata": {"finalizers": ["b", "c"]}})
    assert sorted(out["metadata"]["finalizers"]) == ["a", "b", "c"]
    out = smp(
        {
            "metadata": {
                "$setElementOrder/finalizers": ["a", "b", "c"],
                "finalizers": ["c"],
            }
        }
    )
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "b"]}})
    assert out["metadata"]["finalizers"] == []


def test_smp_owner_references_by_uid() -> None:
    out = smp({"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}})
    assert out["metadata"]["ownerReferences"] == [
        {"uid": "u1", "kind": "ReplicaSet", "name": "rs", "controller": True}
    ]
    out = smp({"metadata": {"ownerReferences": [{"uid": "u1", "$patch": "delete"}]}})
    assert out["metadata"]["ownerReferences"] == []


def test_smp_set_element_order_reorders() -> None:
    # strategic-merge-patch.md, "$setElementOrder": the order of the merged list follows
    # the directive, server-only items keep their relative place.
    out = smp({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["side", "main"]
    out = smp(
        {
            "spec": {
                "$setElementOrder/volumes": [{"name": "new"}, {"name": "data"}],
                "volumes": [{"name": "new", "emptyDir": {}}],
            }
        }
    )
    assert [v["name"] for v in out["spec"]["volumes"]] == ["new", "data", "cfg"]
    with pytest.raises(PatchError):
        smp({"spec": {"$setElementOrder/containers": [{"image": "x"}]}})


def test_smp_retain_keys() -> None:
    # kubectl patch docs, "Use strategic merge patch to update a Deployment using the
    # retainKeys strategy": keys not listed are cleared.
    deploy = {
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "replicas": 2,
        }
    }
    out = smp(
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, deploy, "Deployment"
    )
    assert out == {"spec": {"strategy": {"type": "Recreate"}, "replicas": 2}}
    with pytest.raises(PatchError):
        smp({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}, deploy, "Deployment")


def test_smp_node_status() -> None:
    node = {
        "metadata": {"name": "n"},
        "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/24"]},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "MemoryPressure", "status": "False"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "Hostname", "address": "n"},
            ],
            "capacity": {"cpu": "4", "pods": "110"},
        },
    }
    out = smp(
        {
            "spec": {"taints": [{"key": "b", "effect": "NoExecute"}], "podCIDRs": ["fd00::/64"]},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                "capacity": {"cpu": "8"},
            },
        },
        node,
        "Node",
    )
    assert out["spec"]["taints"] == [{"key": "b", "effect": "NoExecute"}]
    assert out["spec"]["podCIDRs"] == ["fd00::/64", "10.0.0.0/24"]
    assert out["status"]["conditions"][0] == {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
    }
    assert out["status"]["conditions"][1]["type"] == "MemoryPressure"
    assert out["status"]["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.2"},
        {"type": "Hostname", "address": "n"},
    ]
    assert out["status"]["capacity"] == {"cpu": "8", "pods": "110"}


def test_smp_unknown_kind_uses_metadata_table_and_atomic_lists() -> None:
    cm = {"metadata": {"finalizers": ["x"]}, "data": {"a": "1"}, "items": [{"name": "a"}]}
    out = smp({"metadata": {"finalizers": ["y"]}, "items": [{"name": "b"}]}, cm, "ConfigMap")
    assert sorted(out["metadata"]["finalizers"]) == ["x", "y"]
    assert out["items"] == [{"name": "b"}]
    assert merge_schema("Unknown") == {"metadata": MERGE_KEYS["Pod"]["metadata"]}


def test_smp_new_list_elements_are_stripped_of_directives() -> None:
    out = smp({"spec": {"initContainers": [{"name": "i", "image": "x", "env": None}]}})
    assert out["spec"]["initContainers"] == [{"name": "i", "image": "x"}]


def test_smp_result_shares_nothing() -> None:
    out = smp({"status": {"phase": "Running"}})
    out["spec"]["containers"][0]["env"].append({"name": "Z"})
    out["metadata"]["labels"]["x"] = "y"
    assert POD["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    assert POD["metadata"]["labels"] == {"app": "web"}


_names = st.sampled_from(["a", "b", "c", "d", "e"])
_envs = st.lists(
    st.fixed_dictionaries({"name": _names, "value": st.text(alphabet="xyz", max_size=2)}),
    max_size=5,
    unique_by=lambda e: e["name"],
)


@given(_envs, _envs)
def test_smp_keyed_list_properties(original: list[dict[str, str]], patch: list[Any]) -> None:
    target = {"spec": {"containers": [{"name": "c", "env": original}]}}
    out = smp({"spec": {"containers": [{"name": "c", "env": patch}]}}, target)
    env = out["spec"]["containers"][0]["env"]
    by_name = {e["name"]: e for e in env}
    assert len(by_name) == len(env)  # merge keys stay unique
    patched = {e["name"] for e in patch}
    for e in original:
        if e["name"] not in patched:
            assert by_name[e["name"]] == e  # untouched elements are preserved
    for e in patch:
        assert by_name[e["name"]]["value"] == e["value"]
    # elements keep the relative order of the patch and of the original
    names = [e["name"] for e in env]
    assert [n for n in names if n in patched] == [e["name"] for e in patch]
    assert [n for n in names if n not in patched] == [
        e["name"] for e in original if e["name"] not in patched
    ]
    # applying the same patch twice changes nothing more
    assert smp({"spec": {"containers": [{"name": "c", "env": patch}]}}, out) == out


@given(_envs, st.lists(_names, max_size=5, unique=True))
def test_smp_set_element_order_is_honoured(
    original: list[dict[str, str]], order: list[str]
) -> None:
    target = {"spec": {"containers": [{"name": "c", "env": original}]}}
    have = {e["name"] for e in original}
    wanted = [n for n in order if n in have]
    patch = {
        "spec": {
            "containers": [{"name": "c", "$setElementOrder/env": [{"name": n} for n in wanted]}]
        }
    }
    env = smp(patch, target)["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert sorted(names) == sorted(have)
    assert [n for n in names if n in wanted] == wanted


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _json, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.one_of(st.none(), _json), max_size=3),
)
def test_smp_without_merge_lists_is_a_merge_patch(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    # With no merge-keyed fields and no directives, SMP degenerates to RFC 7386.
    assert apply_strategic_merge_patch(target, patch, "ConfigMap") == apply_merge_patch(
        target, patch
    )


def test_merge_list_repr() -> None:
    assert MergeList("name").key == "name"
    assert isinstance(MERGE_KEYS["Pod"]["spec"], dict)


@given(
    st.lists(
        st.fixed_dictionaries({"name": _names, "value": st.text(alphabet="xyz", max_size=2)}),
        max_size=6,
    )
)
def test_smp_into_an_empty_list_keeps_first_appearance_order(patch: list[Any]) -> None:
    """A first write of a keyed list (e.g. a pod's first status) takes the patch's order;
    repeated keys merge into their first position."""
    out = smp({"spec": {"containers": [{"name": "c", "env": patch}]}}, {"spec": {}})
    env = out["spec"]["containers"][0]["env"] if patch else []
    first: dict[str, dict[str, str]] = {}
    for e in patch:
        first.setdefault(e["name"], {}).update(e)
    assert env == list(first.values())
