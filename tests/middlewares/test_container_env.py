"""ContainerEnv is exactly DownwardAPI → ServiceLinks → ResolveConfigSources, template after
template: every pod, error, event and secret report compared with the three middlewares."""

from __future__ import annotations

import base64
import copy
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vkcompose.errors import InvalidInput
from vkcompose.middlewares.config_sources import ResolveConfigSources, StaticSources
from vkcompose.middlewares.container_env import ContainerEnv
from vkcompose.middlewares.downward_api import DownwardAPI
from vkcompose.middlewares.events import RecordingEvents
from vkcompose.middlewares.secret_report import SECRET_REPORT
from vkcompose.middlewares.service_links import ServiceLinks, StaticServices
from vkcompose.ops import CreatePod, NodeInfo, Op, UpdatePod
from vkcompose.pipeline import Pipeline, compose

NODES = (
    NodeInfo(name="vk", host_ips=("192.168.0.1",), allocatable={"cpu": "4", "memory": "8Gi"}),
    NodeInfo(name="vk", host_ips=("192.168.0.1",), allocatable={"cpu": "8", "memory": "1Gi"}),
    NodeInfo(name="vk", host_ips=(), allocatable={}),
)


class Backend:
    """Records what reaches it: the pod, the secret report, how often pod IPs were asked."""

    def __init__(self) -> None:
        self.ips: list[str] = []
        self.seen: list[tuple[Any, ...]] = []
        self.asked = 0

    async def create_pod(self, pod: dict[str, Any], /, *, volume_paths: Any = None) -> None:
        report = SECRET_REPORT.get()
        assert report is not None and report.pod is pod
        self.seen.append((pod, sorted(report.values), dict(report.refs)))

    async def update_pod(self, pod: dict[str, Any], /, *, volume_paths: Any = None) -> None:
        await self.create_pod(pod)

    async def pod_ips(self, pod: dict[str, Any], /) -> Sequence[str]:
        self.asked += 1
        return list(self.ips)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- strategies ----------------------------------------------------------------------------

NAMES = ["A", "B", "POD", "IP", "CPU", "SVC_0_SERVICE_HOST", "P_k1", "k2", "X.Y"]
TEXTS = ["plain", "$(A)", "$$(A)", "x$(POD)y", "$(SVC_0_SERVICE_HOST)", "", "$(P_k1)-$(B)", "$"]
PATHS = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels['app']",
    "metadata.annotations['note']",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.podIP",
    "status.podIPs",
    "status.hostIP",
    "status.hostIPs",
]
# errors are rare on purpose: a pod that fails never reaches a template
PATH = st.one_of(st.sampled_from(PATHS), st.sampled_from(PATHS), st.just("metadata.bogus"))
RARELY = st.integers(0, 9).map(lambda n: n == 0)

field_ref = st.builds(
    lambda path, v: {"fieldRef": {"fieldPath": path, **({"apiVersion": v} if v else {})}},
    PATH,
    st.sampled_from([None, None, "v1", "v1", "v2"]),
)
resource_ref = st.builds(
    lambda resource, divisor, other: {
        "resourceFieldRef": {
            "resource": resource,
            **({"divisor": divisor} if divisor else {}),
            **({"containerName": "c0"} if other else {}),
        }
    },
    st.sampled_from(["limits.cpu", "requests.memory", "limits.memory"] * 3 + ["limits.bogus"]),
    st.sampled_from([None, "1m", "1Mi"]),
    RARELY,
)
key_ref = st.builds(
    lambda kind, other, key, optional: {
        kind: {
            "name": "gone" if other else "cm1" if kind == "configMapKeyRef" else "s1",
            "key": key,
            **({"optional": True} if optional else {}),
        }
    },
    st.sampled_from(["configMapKeyRef", "secretKeyRef"]),
    RARELY,
    st.sampled_from(["k1"] * 6 + ["k2", "p", "nokey"]),
    st.booleans(),
)
entry = st.one_of(
    st.builds(lambda n, t: {"name": n, "value": t}, st.sampled_from(NAMES), st.sampled_from(TEXTS)),
    st.builds(
        lambda n, r: {"name": n, "valueFrom": r},
        st.sampled_from(NAMES),
        st.one_of(field_ref, field_ref, resource_ref, key_ref),
    ),
    st.builds(  # a literal value wins over valueFrom
        lambda n, r: {"name": n, "value": "lit", "valueFrom": r}, st.sampled_from(NAMES), field_ref
    ),
)
env_from = st.builds(
    lambda kind, other, prefix, optional: {
        kind: {
            "name": "gone" if other else "cm1" if kind == "configMapRef" else "s1",
            **({"optional": True} if optional else {}),
        },
        **({"prefix": prefix} if prefix else {}),
    },
    st.sampled_from(["configMapRef", "secretRef"]),
    RARELY,
    st.sampled_from(["", "P_", "1"]),
    st.booleans(),
)
words = st.lists(st.sampled_from(["sh", "$(A)", "$(POD)", "$$(A)", "x"]), max_size=3)


@st.composite
def container(draw: st.DrawFn, name: str) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "busybox"}
    if draw(st.booleans()):
        c["env"] = draw(st.lists(entry, max_size=6))
    if draw(st.booleans()):
        c["envFrom"] = draw(st.lists(env_from, max_size=2))
    if draw(st.booleans()):
        c["command"] = draw(words)
    if draw(st.booleans()):
        c["args"] = draw(words)
    if draw(st.booleans()):
        c["resources"] = {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}}
    return c


@st.composite
def template(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [draw(container(f"c{i}")) for i in range(draw(st.integers(1, 2)))]
    }
    if draw(st.booleans()):
        spec["initContainers"] = [draw(container("i0"))]
    if draw(st.booleans()):
        spec["enableServiceLinks"] = False
    if draw(st.booleans()):
        spec["serviceAccountName"] = "runner"
    return spec


LABEL = st.sampled_from([None, "web", "", "api"])
NOTE = st.sampled_from([None, "", "$(A)", "$$x", "cost $5", "plain"])


@st.composite
def pod_step(draw: st.DrawFn, index: int) -> tuple[str, Any]:
    meta: dict[str, Any] = {
        "name": f"pod-{index}",
        "namespace": draw(st.sampled_from(["default", "default", "other"])),
        "uid": f"uid-{index}",
    }
    label, note = draw(LABEL), draw(NOTE)
    if label is not None:
        meta["labels"] = {"app": label}
    if note is not None:
        meta["annotations"] = {"note": note}
    status = {"podIP": "10.9.9.9"} if draw(st.booleans()) else {}
    return "pod", {
        "meta": meta,
        "node": draw(st.sampled_from(range(len(NODES)))),
        "ips": draw(st.sampled_from([[], ["10.1.0.5"], ["10.1.0.5", "fd00::5"]])),
        "node_name": draw(st.sampled_from([None, "vk"])),
        "status": status,
        "other_template": draw(st.booleans()) and draw(st.booleans()),
        "update": draw(st.booleans()) and draw(st.booleans()),
    }


CHANGES = st.sampled_from(
    ["cm1 v2", "cm1 gone", "s1 v2", "s1 gone", "services", "cm1 no-rv", "cm1 same-rv copy"]
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, Any]]]:
    first = draw(template())
    second = draw(template())
    steps: list[tuple[str, Any]] = []
    for i in range(draw(st.integers(2, 9))):
        if draw(st.integers(0, 4)) == 0:
            steps.append(("change", draw(CHANGES)))
        steps.append(draw(pod_step(i)))
    return first, second, steps


def initial_sources() -> StaticSources:
    objects = []
    for ns in ("default", "other"):
        objects += [
            {
                "kind": "ConfigMap",
                "metadata": {"name": "cm1", "namespace": ns, "resourceVersion": "1"},
                "data": {"k1": "v1", "k2": "$(A)x", "bad key": "z", "1abc": "q"},
            },
            {
                "kind": "Secret",
                "metadata": {"name": "s1", "namespace": ns, "resourceVersion": "2"},
                "data": {"p": b64("pw$(B)"), "k1": b64("s3cret")},
            },
        ]
    return StaticSources(objects)


def apply_change(change: str, sources: StaticSources, services: StaticServices) -> None:
    for ns in ("default", "other"):
        if change == "cm1 v2":
            sources.put(
                {
                    "kind": "ConfigMap",
                    "metadata": {"name": "cm1", "namespace": ns, "resourceVersion": "10"},
                    "data": {"k1": "v1-new", "k2": "two"},
                }
            )
        elif change == "cm1 gone":
            sources.delete("ConfigMap", ns, "cm1")
        elif change == "s1 v2":
            sources.put(
                {
                    "kind": "Secret",
                    "metadata": {"name": "s1", "namespace": ns, "resourceVersion": "11"},
                    "data": {"p": b64("other-pw")},
                }
            )
        elif change == "s1 gone":
            sources.delete("Secret", ns, "s1")
        elif change == "cm1 no-rv":
            sources.put(
                {"kind": "ConfigMap", "metadata": {"name": "cm1", "namespace": ns}, "data": {}}
            )
        elif change == "cm1 same-rv copy":
            obj = sources.get_configmap(ns, "cm1")
            if obj is not None:
                sources.put({**copy.deepcopy(obj), "kind": "ConfigMap"})
    if change == "services":
        services.set(
            [
                {
                    "metadata": {"name": "svc-0", "namespace": "default"},
                    "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 8080}]},
                },
                {
                    "metadata": {"name": "kubernetes", "namespace": "default"},
                    "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]},
                },
            ]
        )


def initial_services() -> StaticServices:
    return StaticServices(
        [
            {
                "metadata": {"name": "svc-0", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]},
            },
            {
                "metadata": {"name": "db", "namespace": "other"},
                "spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 5432}]},
            },
        ]
    )


async def outcome(pipeline: Pipeline, backend: Backend, op: Op) -> tuple[Any, ...]:
    before = len(backend.seen)
    try:
        await pipeline(op)
    except InvalidInput as e:
        return ("error", type(e).__name__, str(e), e.reason)
    except Exception as e:  # e.g. KeyError from a malformed pod: same on both sides
        return ("error", type(e).__name__, str(e))
    assert len(backend.seen) == before + 1
    return ("ok", *backend.seen[-1])


@pytest.mark.anyio
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
async def test_same_as_the_three_middlewares(
    case: tuple[dict[str, Any], dict[str, Any], list[tuple[str, Any]]],
) -> None:
    first, second, steps = case
    sources, services = initial_sources(), initial_services()
    long_events, short_events = RecordingEvents(), RecordingEvents()
    long_backend, short_backend = Backend(), Backend()
    three = compose(
        DownwardAPI(),
        ServiceLinks(services),
        ResolveConfigSources(sources, long_events),
        backend=long_backend,
    )
    env = ContainerEnv(sources, services, short_events)
    one = compose(env, backend=short_backend)
    for kind, step in steps:
        if kind == "change":
            apply_change(step, sources, services)
            continue
        spec = copy.deepcopy(second if step["other_template"] else first)
        if step["node_name"]:
            spec["nodeName"] = step["node_name"]
        pod = {"metadata": step["meta"], "spec": spec, "status": step["status"]}
        node = NODES[step["node"]]
        long_backend.ips = short_backend.ips = step["ips"]
        op_type = UpdatePod if step["update"] else CreatePod
        expected = await outcome(three, long_backend, op_type(copy.deepcopy(pod), node=node))
        got = await outcome(one, short_backend, op_type(copy.deepcopy(pod), node=node))
        assert got == expected
        assert short_backend.asked == long_backend.asked  # pod IPs asked once, when needed
        assert short_events.events == long_events.events
    assert env.filled + env.resolved == sum(1 for kind, _ in steps if kind == "pod")
    event(f"filled {min(env.filled, 3)}")


# --- the short way, case by case -----------------------------------------------------------


def web_pod(index: int, **extra_env: Any) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k1"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k1"}}},
        {"name": "TOKEN", "value": "$(B)-$(POD)"},
        *({"name": k, "value": v} for k, v in extra_env.items()),
    ]
    return {
        "metadata": {"name": f"web-{index}", "namespace": "default", "uid": f"u{index}"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "command": ["run", "--as=$(POD)", "$(A)"],
                    "env": env,
                    "envFrom": [{"configMapRef": {"name": "cm1"}, "prefix": "CFG_"}],
                    "resources": {"limits": {"cpu": "1500m"}},
                }
            ]
        },
    }


def pair() -> tuple[Pipeline, Backend, ContainerEnv, Pipeline, Backend, StaticSources]:
    sources, services = initial_sources(), initial_services()
    long_backend, short_backend = Backend(), Backend()
    long_backend.ips = short_backend.ips = ["10.1.0.5"]
    three = compose(
        DownwardAPI(), ServiceLinks(services), ResolveConfigSources(sources), backend=long_backend
    )
    env = ContainerEnv(sources, services)
    return three, long_backend, env, compose(env, backend=short_backend), short_backend, sources


@pytest.mark.anyio
async def test_pods_of_one_template_are_filled_in() -> None:
    three, long_backend, env, one, short_backend, _ = pair()
    for i in range(4):
        expected = await outcome(three, long_backend, CreatePod(web_pod(i), node=NODES[0]))
        got = await outcome(one, short_backend, CreatePod(web_pod(i), node=NODES[0]))
        assert got == expected
    assert (env.resolved, env.filled) == (2, 2)  # compiled when the template comes again
    _, pod, secret_values, refs = got
    values = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert values["POD"] == "web-3" and values["IP"] == "10.1.0.5" and values["CPU"] == "2"
    assert values["TOKEN"] == "s3cret-web-3"  # a value built from a Secret, per pod
    assert secret_values == ["s3cret", "s3cret-web-3"]
    assert refs == {"app": (frozenset({"B"}), ())}
    assert pod["spec"]["containers"][0]["command"] == ["run", "--as=web-3", "v1"]


@pytest.mark.anyio
async def test_a_changed_source_is_read_again() -> None:
    three, long_backend, env, one, short_backend, sources = pair()
    for i in range(3):
        await outcome(one, short_backend, CreatePod(web_pod(i), node=NODES[0]))
    assert (env.resolved, env.filled) == (2, 1)
    apply_change("cm1 v2", sources, StaticServices())
    expected = await outcome(three, long_backend, CreatePod(web_pod(3), node=NODES[0]))
    got = await outcome(one, short_backend, CreatePod(web_pod(3), node=NODES[0]))
    assert got == expected
    assert got[1]["spec"]["containers"][0]["command"][2] == "v1-new"
    assert (env.resolved, env.filled) == (3, 1)
    await outcome(one, short_backend, CreatePod(web_pod(4), node=NODES[0]))
    assert (env.resolved, env.filled) == (3, 2)


@pytest.mark.anyio
async def test_a_template_reading_another_container_is_not_compiled() -> None:
    three, long_backend, env, one, short_backend, _ = pair()
    for i in range(3):
        pod = web_pod(i)
        pod["spec"]["containers"][0]["env"][2]["valueFrom"]["resourceFieldRef"]["containerName"] = (
            "app"
        )
        expected = await outcome(three, long_backend, CreatePod(copy.deepcopy(pod), node=NODES[0]))
        assert await outcome(one, short_backend, CreatePod(pod, node=NODES[0])) == expected
    assert (env.resolved, env.filled) == (3, 0)


@pytest.mark.anyio
async def test_unknowable_pod_ips_fail_a_filled_in_pod_as_the_downward_api_does() -> None:
    three, long_backend, env, one, short_backend, _ = pair()
    for i in range(2):
        await outcome(one, short_backend, CreatePod(web_pod(i), node=NODES[0]))
    long_backend.ips = short_backend.ips = []
    expected = await outcome(three, long_backend, CreatePod(web_pod(1), node=NODES[0]))
    got = await outcome(one, short_backend, CreatePod(web_pod(1), node=NODES[0]))
    assert got == expected and got[0] == "error"
    assert got[3] == "CreateContainerConfigError" and "pod's IPs cannot be known" in got[2]
    assert env.filled == 1 and short_backend.asked == 3


@pytest.mark.anyio
async def test_a_secret_built_per_pod_is_learned_by_the_standard_stack() -> None:
    from vkcompose.middlewares.redaction import LearnSecrets
    from vkcompose.recipes._stack import standard_middlewares

    backend = Backend()
    backend.ips = ["10.1.0.5"]
    stack = standard_middlewares(sources=initial_sources(), services=initial_services())
    pipeline = compose(*stack, backend=backend)
    for i in range(4):
        await pipeline(CreatePod(web_pod(i), node=NODES[0]))
    (env,) = [m for m in stack if isinstance(m, ContainerEnv)]
    assert env.filled == 2
    (learner,) = [m for m in stack if isinstance(m, LearnSecrets)]
    assert "s3cret-web-3" in learner.registry
    assert learner.registry.redact_text("token s3cret-web-3") != "token s3cret-web-3"


@pytest.mark.anyio
async def test_a_template_seen_once_is_not_compiled() -> None:
    _, _, env, one, short_backend, _ = pair()
    for i in range(3):
        await outcome(one, short_backend, CreatePod(web_pod(i, UNIQUE=f"u{i}"), node=NODES[0]))
    assert (env.resolved, env.filled) == (3, 0)
    assert repr(env) == "ContainerEnv(templates=0)"


@pytest.mark.anyio
async def test_workloads_sharing_a_slot_keep_their_own_templates() -> None:
    three, long_backend, env, one, short_backend, _ = pair()
    for i in range(8):
        pod = web_pod(i, FLAVOUR="blue" if i % 2 else "green")
        expected = await outcome(three, long_backend, CreatePod(copy.deepcopy(pod), node=NODES[0]))
        assert await outcome(one, short_backend, CreatePod(pod, node=NODES[0])) == expected
    assert (env.resolved, env.filled) == (4, 4)
    assert repr(env) == "ContainerEnv(templates=2)"


# --- regressions: inputs where filling in once differed from the three middlewares ---------


async def compare(
    pods: list[dict[str, Any]],
    *,
    services: Any = None,
    node: NodeInfo = NODES[0],
    backend: type[Backend] = Backend,
) -> tuple[ContainerEnv, list[tuple[Any, ...]]]:
    """Run ``pods`` through both pipelines (fresh sources each); assert the same outcomes."""
    runs = []
    for which in ("three", "one"):
        sources = initial_sources()
        svc = services if services is not None else initial_services()
        events = RecordingEvents()
        b = backend()
        b.ips = ["10.1.0.5"]
        b.sources = sources  # type: ignore[attr-defined]
        b.services = svc  # type: ignore[attr-defined]
        env = ContainerEnv(sources, svc, events)
        pipeline = (
            compose(
                DownwardAPI(), ServiceLinks(svc), ResolveConfigSources(sources, events), backend=b
            )
            if which == "three"
            else compose(env, backend=b)
        )
        outcomes = [
            await outcome(pipeline, b, CreatePod(copy.deepcopy(p), node=node)) for p in pods
        ]
        runs.append((env, outcomes, events.events, b.asked))
    (_, expected, expected_events, expected_asked), (env, got, events, asked) = runs
    assert got == expected
    assert (events, asked) == (expected_events, expected_asked)
    return env, got


def noted(index: int, note: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"p{index}", "namespace": "default", "annotations": {"note": note}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {
                            "name": "N",
                            "valueFrom": {
                                "fieldRef": {"fieldPath": "metadata.annotations['note']"}
                            },
                        },
                        {"name": "E"},  # no value: the resolver writes "" when it rewrites
                    ],
                }
            ]
        },
    }


@pytest.mark.anyio
async def test_a_dollar_in_a_downward_value_makes_the_resolver_rewrite() -> None:
    env, got = await compare(
        [noted(0, "plain"), noted(1, "plain"), noted(2, "plain"), noted(3, "cost ${HOME}")],
        services=StaticServices(),
    )
    assert got[3][1]["spec"]["containers"][0]["env"] == [
        {"name": "N", "value": "cost ${HOME}"},
        {"name": "E", "value": ""},
    ]
    assert (env.filled, env.resolved) == (1, 3)


@pytest.mark.anyio
async def test_an_absent_field_and_a_null_one_are_different_templates() -> None:
    def pod(index: int, null: bool) -> dict[str, Any]:
        p = web_pod(index)
        del p["spec"]["containers"][0]["envFrom"]
        if null:
            p["spec"]["containers"][0]["envFrom"] = None
        return p

    await compare([pod(0, True), pod(1, True), pod(2, True), pod(3, False), pod(4, True)])
    await compare([pod(0, False), pod(1, False), pod(2, False), pod(3, True)])


@pytest.mark.anyio
async def test_pods_without_containers_take_the_long_way() -> None:
    pods: list[dict[str, Any]] = [
        {"metadata": {"name": f"p{i}", "namespace": "default"}, **spec}
        for i, spec in enumerate(
            [{}, {}, {"spec": None}, {"spec": {}}, {"spec": {"containers": []}}]
        )
    ]
    env, got = await compare(pods)
    assert env.filled == 0 and all(o[0] == "ok" for o in got)


@pytest.mark.anyio
async def test_odd_divisors_and_read_only_allocatable_amounts() -> None:
    from types import MappingProxyType

    pods = [web_pod(i) for i in range(4)]
    for p in pods[:2]:
        p["spec"]["containers"][0]["env"][2]["valueFrom"]["resourceFieldRef"]["divisor"] = {}
    node = NodeInfo(
        name="vk", host_ips=("192.168.0.1",), allocatable=MappingProxyType({"cpu": "4"})
    )
    await compare(pods[:2] * 2, node=node)
    env, _ = await compare([*pods[2:], web_pod(5)], node=node)
    assert env.filled == 1


class ChangingBackend(Backend):
    """Updates ConfigMap cm1 while it tells the pod IPs of the fourth pod."""

    sources: StaticSources

    async def pod_ips(self, pod: dict[str, Any], /) -> Sequence[str]:
        if self.asked == 3:
            self.sources.put(
                {
                    "kind": "ConfigMap",
                    "metadata": {"name": "cm1", "namespace": "default", "resourceVersion": "99"},
                    "data": {"k1": "NEW"},
                }
            )
        return await super().pod_ips(pod)


@pytest.mark.anyio
async def test_a_source_changed_while_the_backend_tells_pod_ips_is_read() -> None:
    env, got = await compare([web_pod(i) for i in range(5)], backend=ChangingBackend)
    assert got[3][1]["spec"]["containers"][0]["command"][2] == "NEW"
    assert env.filled == 2  # the fourth pod went the long way (with the IPs already told)


@pytest.mark.anyio
async def test_malformed_metadata_fails_before_pod_ips_are_asked() -> None:
    broken = web_pod(3)
    broken["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] = (
        "metadata.labels['app']"
    )
    pods = [copy.deepcopy(broken) for _ in range(3)]
    for i, p in enumerate(pods):
        p["metadata"]["labels"] = {"app": "a"} if i < 2 else ["app"]
    _, got = await compare(pods)
    assert got[2][:2] == ("error", "AttributeError")


@pytest.mark.anyio
async def test_pods_that_never_share_a_template_are_only_sampled() -> None:
    from vkcompose.middlewares.container_env import IDLE_AFTER, SAMPLE_EVERY

    _, _, env, one, short_backend, _ = pair()
    for i in range(IDLE_AFTER):
        await outcome(one, short_backend, CreatePod(web_pod(i, UNIQUE=f"u{i}"), node=NODES[0]))
    assert env.sampling and repr(env) == "ContainerEnv(templates=0)"
    # replicas arrive: a template still gets compiled (from sampled pods) and filled in
    i = IDLE_AFTER
    while env.filled == 0:
        got = await outcome(one, short_backend, CreatePod(web_pod(i), node=NODES[0]))
        assert got[0] == "ok"
        i += 1
        assert i < IDLE_AFTER + 3 * SAMPLE_EVERY + 1
    assert not env.sampling
    await outcome(one, short_backend, CreatePod(web_pod(i), node=NODES[0]))
    assert env.filled == 2  # every pod is looked at again


class UnlistedServices:
    """A service reader before its first list (as the cluster-bound one raises)."""

    generation = 0

    def list_services(self, namespace: str) -> list[dict[str, Any]]:
        from vkcompose.errors import TemporaryError

        raise TemporaryError("services are not listed yet", delay=1.0)


@pytest.mark.anyio
async def test_unreadable_service_links_fail_after_the_downward_api() -> None:
    bad = web_pod(0)
    bad["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] = "metadata.bogus"
    _, got = await compare([bad, web_pod(1)], services=UnlistedServices())
    assert got[0][3] == "CreateContainerConfigError"  # the downward API's error comes first
    assert got[1][:2] == ("error", "TemporaryError")
    odd = web_pod(2)
    odd["metadata"]["namespace"] = ["default"]  # (unhashable: malformed)
    await compare([odd])


@pytest.mark.anyio
async def test_nan_is_not_taken_for_null_in_a_template() -> None:
    pods = [web_pod(i, X=None) for i in range(3)] + [web_pod(3, X=float("nan"))]
    _, got = await compare(pods)
    assert got[3][:2] == ("error", "TypeError")


class ServicesChangingBackend(Backend):
    """Replaces the Services while it tells the pod IPs of the fourth pod."""

    services: StaticServices

    async def pod_ips(self, pod: dict[str, Any], /) -> Sequence[str]:
        if self.asked == 3:
            apply_change("services", StaticSources(), self.services)
        return await super().pod_ips(pod)


@pytest.mark.anyio
async def test_services_changed_while_the_backend_tells_pod_ips_are_read() -> None:
    env, got = await compare([web_pod(i) for i in range(5)], backend=ServicesChangingBackend)
    names = {e["name"]: e["value"] for e in got[3][1]["spec"]["containers"][0]["env"]}
    assert names["SVC_0_SERVICE_PORT"] == "8080"  # the new Service, not the one compiled in
    # the fourth pod went the long way; the new service links make a new template place,
    # whose template is compiled at its second pod (the fifth)
    assert (env.filled, env.resolved) == (1, 4)
