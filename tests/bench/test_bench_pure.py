"""Pure parts of the benchmark: percentiles, request classification, schema, pods, tracker."""

from __future__ import annotations

import copy
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.bench.load import PodTracker
from vkcompose.bench.pods import LABEL, TemplateError, default_template, load_template, pod_body
from vkcompose.bench.report import document, ratios
from vkcompose.bench.requests import LOAD_USER_AGENT, classify, client_of
from vkcompose.bench.run import BenchOptions, RecipeResult
from vkcompose.bench.schema import SCHEMA, validate
from vkcompose.bench.stats import percentile, summarize
from vkcompose.node.settings import PROVIDER_TAINT_KEY

durations = st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1)


@given(
    durations, st.floats(min_value=0.01, max_value=100), st.floats(min_value=0.01, max_value=100)
)
def test_percentile_is_a_value_and_monotonic(values: list[float], q1: float, q2: float) -> None:
    ordered = sorted(values)
    low, high = sorted((q1, q2))
    assert percentile(ordered, low) in ordered
    assert percentile(ordered, low) <= percentile(ordered, high)


@given(durations)
def test_summary_is_ordered(values: list[float]) -> None:
    s = summarize(values)
    assert s.count == len(values)
    assert min(values) <= s.p50 <= s.p90 <= s.p99 <= s.max == max(values)
    assert min(values) - 1e-9 <= s.mean <= max(values) + 1e-9


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/pods", {}, ("list", "pods")),
        ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "pods")),
        ("GET", "/api/v1/watch/namespaces/a/pods", {}, ("watch", "pods")),
        ("GET", "/api/v1/namespaces/a/pods/p", {}, ("get", "pods")),
        ("POST", "/api/v1/namespaces/a/pods", {}, ("create", "pods")),
        ("PATCH", "/api/v1/namespaces/a/pods/p/status", {}, ("patch", "pods/status")),
        ("DELETE", "/api/v1/namespaces/a/pods/p", {}, ("delete", "pods")),
        ("DELETE", "/api/v1/namespaces/a/pods", {}, ("deletecollection", "pods")),
        ("PUT", "/api/v1/nodes/n/status", {}, ("update", "nodes/status")),
        ("GET", "/api/v1/namespaces", {}, ("list", "namespaces")),
        ("GET", "/api/v1/namespaces/a", {}, ("get", "namespaces")),
        (
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/d/token",
            {},
            ("create", "serviceaccounts/token"),
        ),
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/l/leases/n", {}, ("get", "leases")),
        ("GET", "/version", {}, ("get", "/version")),
        ("GET", "/api", {}, ("get", "discovery")),
    ],
)
def test_classify(method: str, path: str, query: dict[str, str], expected: tuple[str, str]) -> None:
    assert classify(method, path, query) == expected


def test_client_of() -> None:
    assert client_of(LOAD_USER_AGENT) == "load"
    assert client_of("vkcompose/0.1.0") == "node"
    assert client_of("kubectl/v1.37") == "other"


def test_validator_reports_paths() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "b": {"enum": ["x", "y"]},
            "c": {"type": ["number", "null"], "maximum": 1},
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    assert validate({"a": [0, 1], "b": "x", "c": None}, schema) == []
    problems = validate({"a": [0, -1, True], "b": "z", "c": 2, "d": 1}, schema)
    assert problems == [
        "$.a[1]: -1 is below the minimum 0",
        "$.a[2]: expected integer, got bool",
        "$.b: 'z' is not one of ['x', 'y']",
        "$.c: 2 is above the maximum 1",
        "$: unexpected key 'd'",
    ]
    assert validate({}, schema) == ["$: missing required key 'a'", "$: missing required key 'b'"]


def _result(recipe: str, scale: float) -> RecipeResult:
    result = RecipeResult(recipe=recipe, node_names=["vk"], rounds=1)
    result.created = result.running = result.deletes_sent = result.gone = 4
    result.create_to_running = [0.1 * scale, 0.2 * scale, 0.3 * scale, 0.4 * scale]
    result.delete_to_gone = [0.2, 0.2, 0.3, 0.3]
    result.running_seconds = 0.5 * scale
    result.delete_seconds = 0.4
    result.timings = {("backend", "pod.create"): [4, 0.004, 0.004]}
    result.layer_order = ["backend"]
    result.ceiling_patches, result.ceiling_seconds = 200, 0.5
    result.requests.update({("node", "patch pods/status"): 12, ("load", "create pods"): 4})
    return result


def test_document_validates_and_compares() -> None:
    doc = document([_result("a", 1.0), _result("b", 2.0)], BenchOptions(pods=4))
    assert validate(doc, SCHEMA) == []
    assert doc["ratios"]["create_to_running_pods_per_s"] == pytest.approx(0.5)
    assert doc["ratios"]["create_to_running_p50"] == pytest.approx(2.0)
    assert doc["results"][0]["api_requests"]["node"]["per_pod"] == 3.0
    broken = copy.deepcopy(doc)
    del broken["results"][0]["latency_seconds"]["create_to_running"]["p99"]
    assert validate(broken, SCHEMA) == [
        "$.results[0].latency_seconds.create_to_running: missing required key 'p99'"
    ]


def test_ratios_of_zero_base_are_null() -> None:
    a = document([RecipeResult(recipe="a")], BenchOptions())["results"][0]
    assert set(ratios(a, a).values()) == {None}


def test_pod_body_binds_or_leaves_to_the_scheduler() -> None:
    template = default_template()
    bound = pod_body(template, "p-1", node_name="vk", run="r1")
    assert bound["spec"]["nodeName"] == "vk"
    assert bound["metadata"]["labels"][LABEL] == "r1"
    assert "nodeName" not in pod_body(template, "p-2", node_name=None)["spec"]
    assert template == default_template()  # not mutated


def test_pod_template_gets_the_provider_toleration(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(
        "kind: Pod\nmetadata: {name: x, namespace: y}\nspec:\n  containers: [{name: a}]\n"
    )
    pod = pod_body(load_template(path), "p", node_name=None)
    assert pod["metadata"]["namespace"] == "vkcompose-bench"
    assert [t["key"] for t in pod["spec"]["tolerations"]] == [PROVIDER_TAINT_KEY]


@pytest.mark.parametrize(
    "text", ["kind: Service\nspec: {}\n", "- a\n", "kind: Pod\nspec: {}\n", "a: [b"]
)
def test_bad_pod_templates(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError):
        load_template(path)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_tracker_measures_and_wakes_waiters() -> None:
    clock = FakeClock()
    tracker = PodTracker(clock)
    tracker.create_sent("a")
    tracker.create_sent("b")
    tracker.create_sent("c")
    tracker.create_failed("c", "HTTP 500")
    clock.now = 1.5
    tracker.on_event("ADDED", {"metadata": {"name": "a"}, "status": {"phase": "Pending"}})
    assert tracker.awaiting_running == 2
    tracker.on_event("MODIFIED", {"metadata": {"name": "a"}, "status": {"phase": "Running"}})
    done = anyio.Event()

    async def waiter() -> None:
        await tracker.wait_until(lambda: tracker.awaiting_running == 0)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()
        clock.now = 2.0
        tracker.on_event("MODIFIED", {"metadata": {"name": "b"}, "status": {"phase": "Running"}})
    assert done.is_set()
    assert sorted(tracker.create_to_running()) == [1.5, 2.0]
    tracker.delete_about_to_send("a")
    clock.now = 2.25
    tracker.on_event("DELETED", {"metadata": {"name": "a"}})
    assert tracker.delete_to_gone() == [0.25]
    assert tracker.awaiting_gone == 0
    assert tracker.failed == {"c": "HTTP 500"}


def test_timed_layers_show_the_runtime_what_the_middleware_holds() -> None:
    from vkcompose.backends.memory import MemoryBackend
    from vkcompose.bench.instrument import instrument_node
    from vkcompose.middlewares.timing import Timed, TimingRecorder
    from vkcompose.node.cluster import ClusterBound
    from vkcompose.node.runtime import NodeRuntime
    from vkcompose.node.settings import VirtualNode
    from vkcompose.recipes._stack import standard_middlewares

    def bound(node: VirtualNode) -> list[type]:
        runtime = NodeRuntime.__new__(NodeRuntime)
        runtime.pipeline = node.pipeline
        return sorted((type(b) for b in runtime.cluster_bound()), key=lambda t: t.__name__)

    node = VirtualNode(
        name="vk",
        backend=MemoryBackend(),
        middlewares=standard_middlewares(volumes_root=Path("unused")),
    )
    expected = bound(node)
    assert len(expected) == 3 and all(issubclass(t, ClusterBound) for t in expected)
    instrument_node(node, TimingRecorder())
    assert all(isinstance(m, Timed) for m in node.middlewares[:-1])  # then the backend timer
    assert bound(node) == expected
