"""The downward API middleware and its pure core, checked against the Kubernetes docs."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import InvalidInput
from vkcompose.middlewares.config_sources import ResolveConfigSources, StaticSources
from vkcompose.middlewares.downward_api import (
    DownwardAPI,
    has_downward_env,
    needs_pod_ips,
    resolve_downward,
    resolve_downward_env,
    volume_item_value,
)
from vkcompose.ops import CreatePod, ListPods, NodeInfo, UpdatePod
from vkcompose.pipeline import compose
from vkcompose.podspec.fieldpath import FieldPathError

NODE = NodeInfo(
    name="vk-1",
    host_ips=("192.168.1.10", "fd00::10"),
    allocatable={"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"},
)


def field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def resource(
    name: str, res: str, container: str = "", divisor: str | None = None
) -> dict[str, Any]:
    ref: dict[str, Any] = {"resource": res}
    if container:
        ref["containerName"] = container
    if divisor:
        ref["divisor"] = divisor
    return {"name": name, "valueFrom": {"resourceFieldRef": ref}}


def dapi_envars_pod() -> dict[str, Any]:
    """The docs' ``dapi-envars-fieldref`` pod, as the API server returns it once bound."""
    return {
        "metadata": {"name": "dapi-envars-fieldref", "namespace": "default", "uid": "u-1"},
        "spec": {
            "nodeName": "vk-1",
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "test-container",
                    "command": ["sh", "-c"],
                    "env": [
                        field("MY_NODE_NAME", "spec.nodeName"),
                        field("MY_POD_NAME", "metadata.name"),
                        field("MY_POD_NAMESPACE", "metadata.namespace"),
                        field("MY_POD_IP", "status.podIP"),
                        field("MY_POD_SERVICE_ACCOUNT", "spec.serviceAccountName"),
                    ],
                }
            ],
        },
    }


def resourcefieldref_pod() -> dict[str, Any]:
    """The docs' ``dapi-envars-resourcefieldref`` pod."""
    return {
        "metadata": {"name": "dapi-envars-resourcefieldref", "namespace": "default"},
        "spec": {
            "nodeName": "vk-1",
            "containers": [
                {
                    "name": "test-container",
                    "resources": {
                        "requests": {"memory": "32Mi", "cpu": "125m"},
                        "limits": {"memory": "64Mi", "cpu": "250m"},
                    },
                    "env": [
                        resource("MY_CPU_REQUEST", "requests.cpu", "test-container"),
                        resource("MY_CPU_LIMIT", "limits.cpu", "test-container"),
                        resource("MY_MEM_REQUEST", "requests.memory", "test-container"),
                        resource("MY_MEM_LIMIT", "limits.memory", "test-container"),
                    ],
                }
            ],
        },
    }


class Backend:
    """Records what reaches it; reports pod IPs when ``ips`` is given."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []

    async def create_pod(self, pod: dict[str, Any]) -> None:
        self.created.append(pod)

    async def update_pod(self, pod: dict[str, Any]) -> None:
        self.updated.append(pod)

    async def list_pods(self) -> list[dict[str, Any]]:
        return [{"listed": True}]


class IPBackend(Backend):
    def __init__(self, ips: Sequence[str]) -> None:
        super().__init__()
        self.ips = list(ips)
        self.asked = 0

    async def pod_ips(self, pod: dict[str, Any]) -> list[str]:
        self.asked += 1
        return self.ips


def env_of(pod: dict[str, Any], index: int = 0) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][index]["env"]}


@pytest.mark.anyio
async def test_dapi_envars_pod_through_the_pipeline() -> None:
    backend = IPBackend(["10.244.0.7", "fd00:244::7"])
    pod = dapi_envars_pod()
    before = copy.deepcopy(pod)
    await compose(DownwardAPI(), ResolveConfigSources(StaticSources()), backend=backend)(
        CreatePod(pod=pod, node=NODE)
    )
    assert pod == before, "the input pod must not be mutated"
    assert env_of(backend.created[0]) == {
        "MY_NODE_NAME": "vk-1",
        "MY_POD_NAME": "dapi-envars-fieldref",
        "MY_POD_NAMESPACE": "default",
        "MY_POD_IP": "10.244.0.7",
        "MY_POD_SERVICE_ACCOUNT": "default",
    }
    assert backend.asked == 1


@pytest.mark.anyio
async def test_resourcefieldref_pod_gives_the_docs_values() -> None:
    backend = Backend()
    await compose(DownwardAPI(NODE), backend=backend)(CreatePod(pod=resourcefieldref_pod()))
    assert env_of(backend.created[0]) == {
        "MY_CPU_REQUEST": "1",
        "MY_CPU_LIMIT": "1",
        "MY_MEM_REQUEST": "33554432",
        "MY_MEM_LIMIT": "67108864",
    }


def test_resource_refs_default_to_the_own_container_and_node_allocatable() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "resources": {"requests": {"cpu": "250m"}},
                    "env": [
                        resource("CPU_REQ", "requests.cpu", divisor="1m"),
                        resource("CPU_LIM", "limits.cpu"),
                        resource("MEM_LIM", "limits.memory", divisor="1Mi"),
                        {"name": "PLAIN", "value": "x"},
                    ],
                }
            ]
        },
    }
    env = resolve_downward_env(pod, pod["spec"]["containers"][0], node=NODE)
    assert env == [
        {"name": "CPU_REQ", "value": "250"},
        {"name": "CPU_LIM", "value": "4"},
        {"name": "MEM_LIM", "value": "8192"},
        {"name": "PLAIN", "value": "x"},
    ]


@pytest.mark.anyio
async def test_pod_ips_fall_back_to_host_ips_for_host_network_pods() -> None:
    backend = Backend()  # no KnowsPodIPs
    pod = dapi_envars_pod()
    pod["spec"]["hostNetwork"] = True
    pod["spec"]["containers"][0]["env"].append(field("IPS", "status.podIPs"))
    pod["spec"]["containers"][0]["env"].append(field("HOST_IPS", "status.hostIPs"))
    await compose(DownwardAPI(), backend=backend)(CreatePod(pod=pod, node=NODE))
    env = env_of(backend.created[0])
    assert env["MY_POD_IP"] == "192.168.1.10"
    assert env["IPS"] == "192.168.1.10,fd00::10"
    assert env["HOST_IPS"] == "192.168.1.10,fd00::10"

    host_node = NodeInfo(name="vk-h", host_ips=("127.0.0.1",), host_network=True)
    await compose(DownwardAPI(host_node), backend=backend)(CreatePod(pod=dapi_envars_pod()))
    assert env_of(backend.created[1])["MY_POD_IP"] == "127.0.0.1"


@pytest.mark.anyio
async def test_unknowable_pod_ip_is_a_config_error_and_the_backend_is_not_called() -> None:
    backend = Backend()
    with pytest.raises(InvalidInput) as info:
        await compose(DownwardAPI(), backend=backend)(CreatePod(pod=dapi_envars_pod(), node=NODE))
    assert info.value.reason == "CreateContainerConfigError"
    assert "status.podIP" in info.value.message
    assert backend.created == []


@pytest.mark.anyio
@pytest.mark.parametrize("path", [["metadata.name"], {"a": 1}, 7])
async def test_a_field_path_that_is_not_text_is_a_config_error(path: Any) -> None:
    backend = Backend()
    pod = {
        "metadata": {"name": "p", "namespace": "d"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}],
                }
            ]
        },
    }
    with pytest.raises(InvalidInput) as info:
        await compose(DownwardAPI(NODE), backend=backend)(CreatePod(pod=pod, node=NODE))
    assert info.value.reason == "CreateContainerConfigError"
    assert "env X" in info.value.message
    assert backend.created == []


@pytest.mark.anyio
async def test_pod_ips_from_the_pod_status_on_update() -> None:
    backend = Backend()
    pod = dapi_envars_pod()
    pod["status"] = {"podIP": "10.1.2.3", "podIPs": [{"ip": "10.1.2.3"}, {"ip": "fd00::3"}]}
    await compose(DownwardAPI(), backend=backend)(UpdatePod(pod=pod, node=NODE))
    assert env_of(backend.updated[0])["MY_POD_IP"] == "10.1.2.3"


@pytest.mark.anyio
async def test_ips_are_asked_only_when_referenced_and_other_ops_pass_through() -> None:
    backend = IPBackend(["10.0.0.9"])
    pipeline = compose(DownwardAPI(NODE), backend=backend)
    await pipeline(CreatePod(pod=resourcefieldref_pod()))
    plain = {"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c"}]}}
    await pipeline(CreatePod(pod=plain))
    assert backend.asked == 0
    assert backend.created[1] is plain
    assert await pipeline(ListPods()) == [{"listed": True}]


@pytest.mark.anyio
async def test_unsupported_field_is_a_config_error() -> None:
    pod = dapi_envars_pod()
    pod["spec"]["containers"][0]["env"] = [field("PHASE", "status.phase")]
    with pytest.raises(InvalidInput) as info:
        await compose(DownwardAPI(NODE), backend=Backend())(CreatePod(pod=pod))
    assert info.value.reason == "CreateContainerConfigError"
    assert 'container "test-container": env PHASE: field label not supported' in str(info.value)


def test_labels_annotations_and_init_containers() -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"app": "web"}, "annotations": {"a/b": "x"}},
        "spec": {
            "initContainers": [{"name": "init", "env": [field("APP", "metadata.labels['app']")]}],
            "containers": [
                {"name": "main", "env": [field("A", "metadata.annotations['a/b']")]},
                {"name": "untouched", "env": [{"name": "X", "value": "1"}]},
            ],
        },
    }
    out = resolve_downward(pod, node=NODE)
    assert out["spec"]["initContainers"][0]["env"] == [{"name": "APP", "value": "web"}]
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "x"}]
    assert out["spec"]["containers"][1] is pod["spec"]["containers"][1]
    assert has_downward_env(pod) and not needs_pod_ips(pod)
    assert resolve_downward({"spec": {"containers": [{"name": "c"}]}}) == {
        "spec": {"containers": [{"name": "c"}]}
    }


def test_literal_value_wins_over_value_from() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    entry = {"name": "X", "value": "lit", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    assert resolve_downward_env(pod, {"name": "c", "env": [entry]}) == [entry]


@given(st.text(alphabet=st.sampled_from(list("$()AB_x é")), max_size=20))
def test_resolved_values_survive_the_later_expansion(label: str) -> None:
    """Escaping makes ``DownwardAPI`` + ``ResolveConfigSources`` give the label itself."""
    from vkcompose.middlewares.config_sources import resolve_env

    pod = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"k": label}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {"name": "B", "value": "b"},
                        field("L", "metadata.labels['k']"),
                        {"name": "REF", "value": "<$(L)>"},
                    ],
                    "args": ["$(L)"],
                }
            ]
        },
    }
    rewritten = resolve_downward(pod)
    resolved = resolve_env(rewritten, rewritten["spec"]["containers"][0], StaticSources())
    assert resolved.as_dict()["L"] == label
    assert resolved.as_dict()["REF"] == f"<{label}>"
    assert resolved.args == [label]
    assert resolve_downward(pod, escape_values=False)["spec"]["containers"][0]["env"][1] == {
        "name": "L",
        "value": label,
    }


def test_volume_items_as_in_the_docs() -> None:
    pod = resourcefieldref_pod()
    pod["spec"]["containers"][0]["name"] = "client-container"
    pod["metadata"]["labels"] = {
        "zone": "us-est-coast",
        "cluster": "test-cluster1",
        "rack": "rack-22",
    }
    pod["metadata"]["annotations"] = {"build": "two", "builder": "john-doe"}

    def item(res: str, divisor: str) -> dict[str, Any]:
        ref = {"containerName": "client-container", "resource": res, "divisor": divisor}
        return {"path": "x", "resourceFieldRef": ref}

    assert volume_item_value(pod, item("limits.cpu", "1m")) == "250"
    assert volume_item_value(pod, item("requests.cpu", "1m")) == "125"
    assert volume_item_value(pod, item("limits.memory", "1Mi")) == "64"
    assert volume_item_value(pod, item("requests.memory", "1Mi")) == "32"
    labels = {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
    annotations = {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
    assert volume_item_value(pod, labels) == (
        'cluster="test-cluster1"\nrack="rack-22"\nzone="us-est-coast"'
    )
    assert volume_item_value(pod, annotations) == 'build="two"\nbuilder="john-doe"'
    with pytest.raises(FieldPathError):
        volume_item_value(pod, {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}})
    with pytest.raises(FieldPathError):
        volume_item_value(pod, {"path": "nothing"})


downward_entries = st.lists(
    st.one_of(
        st.builds(
            lambda n, p, v: {"name": n, "valueFrom": {"fieldRef": {"fieldPath": p, **v}}},
            st.sampled_from(["A", "B"]),
            st.sampled_from(
                [
                    "metadata.name",
                    "status.podIP",
                    "status.podIPs",
                    "status.phase",
                    "metadata.labels['app']",
                    "spec.nodeName",
                    "status.hostIP",
                ]
            ),
            st.sampled_from([{}, {"apiVersion": "v1"}, {"apiVersion": "v2"}]),
        ),
        st.builds(
            lambda n, r, c: resource(n, r, c),
            st.sampled_from(["C", "D"]),
            st.sampled_from(["limits.cpu", "requests.memory", "limits.gpu"]),
            st.sampled_from(["", "first", "nobody"]),
        ),
        st.builds(lambda n: {"name": n, "value": "x$y"}, st.sampled_from(["A", "E"])),
        st.just({"name": "F", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}),
    ),
    max_size=5,
)


@given(
    first=downward_entries,
    second=downward_entries,
    init=downward_entries,
    ips=st.sampled_from([(), ("10.0.0.5", "fd00::5")]),
)
@pytest.mark.anyio
async def test_middleware_equals_the_pure_core_errors_and_ip_requests_included(
    first: list[dict[str, Any]],
    second: list[dict[str, Any]],
    init: list[dict[str, Any]],
    ips: tuple[str, ...],
) -> None:
    """The middleware (one pass, pod IPs asked only when needed, then filled in) gives what
    resolve_downward gives with the IPs — the same pod, or the same first error — and asks
    for IPs exactly when an entry refers to them."""
    pod: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {
            "initContainers": [{"name": "init", "env": init}],
            "containers": [
                {"name": "first", "env": first, "resources": {"limits": {"cpu": "250m"}}},
                {"name": "second", "env": second},
            ],
        },
    }
    before = copy.deepcopy(pod)
    backend = IPBackend(ips) if ips else Backend()
    pipeline = compose(DownwardAPI(), backend=backend)
    if needs_pod_ips(pod) and not ips:
        with pytest.raises(InvalidInput) as info:
            await pipeline(CreatePod(pod=pod, node=NODE))
        assert "status.podIP" in str(info.value)
        return
    try:
        expected: dict[str, Any] | str = resolve_downward(pod, node=NODE, pod_ips=ips or None)
    except FieldPathError as e:
        expected = str(e)
    try:
        await pipeline(CreatePod(pod=pod, node=NODE))
        got: dict[str, Any] | str = backend.created[0]
    except InvalidInput as e:
        got = str(e)
        assert e.reason == "CreateContainerConfigError"
    assert got == expected
    assert pod == before
    if ips:
        assert isinstance(backend, IPBackend) and backend.asked == int(needs_pod_ips(pod))


FIELD_PATHS = [
    "metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
    "metadata.labels['app']", "metadata.annotations['a.b/c']", "metadata.labels['']",
    "metadata.annotations", "spec.nodeName", "spec.labels['x']", "status.podIP",
    "status.phase", "metadata.name['x']", "", "metadata.labels['app'",
]  # fmt: skip


@given(
    meta=st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["web", "", None]),
            "namespace": st.just("shop"),
            "uid": st.just("u-1"),
            "labels": st.one_of(
                st.none(),
                st.dictionaries(
                    st.sampled_from(["app", "", "x"]),
                    st.one_of(st.text(max_size=3), st.none(), st.just(0)),
                ),
            ),
            "annotations": st.dictionaries(st.sampled_from(["a.b/c", "z"]), st.just("v$")),
        },
    ),
)
def test_compiled_field_getters_equal_the_general_path(meta: dict[str, Any]) -> None:
    """The getters cached per (fieldPath, apiVersion) give exactly what the general downward
    API code gives (values and errors), whatever the pod."""
    from vkcompose.middlewares import downward_api

    pod = {"metadata": meta, "spec": {"nodeName": "vk-1"}}
    ips = ["10.0.0.5"]
    for path in FIELD_PATHS:
        for version in (None, "", "v1", "v2"):
            ref: dict[str, Any] = {"fieldPath": path}
            if version is not None:
                ref["apiVersion"] = version
            try:
                expected: str = downward_api._env_field_value(pod, ref, NODE, ips)
            except FieldPathError as e:
                expected = f"error: {e}"
            downward_api._GETTERS.clear()
            for _ in range(2):  # compiling, then the cached getter
                try:
                    got = downward_api._field_ref_value(pod, ref, NODE, ips, False, {})
                except FieldPathError as e:
                    got = f"error: {e}"
                assert got == expected


same_names_entries = st.lists(
    st.builds(
        lambda name, value, value_from: {
            "name": name,
            **({} if value is None else {"value": value}),
            **({} if value_from is None else {"valueFrom": value_from}),
        },
        st.sampled_from(["A", "B"]),
        st.sampled_from([None, "", "lit", "$(A)"]),
        st.sampled_from(
            [
                None,
                {},
                {"fieldRef": {"fieldPath": "metadata.name"}},
                {"fieldRef": {"fieldPath": "status.podIP"}},
                {"fieldRef": {"fieldPath": "status.phase"}},
                {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v2"}},
                {"fieldRef": None, "resourceFieldRef": {"resource": "limits.cpu"}},
                {"resourceFieldRef": {"resource": "limits.gpu"}},
                {"configMapKeyRef": {"name": "m", "key": "k"}},
            ]
        ),
    ),
    max_size=3,
)


@given(
    envs=st.lists(same_names_entries, min_size=1, max_size=6),
    mutate=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2), same_names_entries)),
)
@pytest.mark.anyio
async def test_pod_after_pod_equals_the_pure_core(
    envs: list[list[dict[str, Any]]], mutate: list[tuple[int, int, list[dict[str, Any]]]]
) -> None:
    """One middleware gives, pod after pod, what resolve_downward gives — also for an ``env``
    with the same names but other entries, and for one changed in place after it was seen
    (nothing learnt from one pod may leak into the next)."""
    backend = IPBackend(["10.0.0.5"])
    pipeline = compose(DownwardAPI(), backend=backend)
    pods: list[dict[str, Any]] = []

    async def check(env: list[dict[str, Any]]) -> None:
        pod: dict[str, Any] = {
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "env": env, "resources": {
                "limits": {"cpu": "250m"}}}]},
        }  # fmt: skip
        pods.append(pod)
        try:
            expected: dict[str, Any] | str = resolve_downward(pod, node=NODE, pod_ips=["10.0.0.5"])
        except FieldPathError as e:
            expected = str(e)
        try:
            await pipeline(CreatePod(pod=pod, node=NODE))
            got: dict[str, Any] | str = backend.created[-1]
        except InvalidInput as e:
            got = str(e)
        assert got == expected

    for env in envs:
        await check(env)
        await check(copy.deepcopy(env))
    for pod_index, entry_index, replacement in mutate:
        env = pods[pod_index % len(pods)]["spec"]["containers"][0]["env"]
        if env and replacement:  # in place: the entry dict itself, as a careless caller might
            env[entry_index % len(env)].clear()
            env[entry_index % len(env)].update(replacement[0])
        await check(env)
