"""Pure parts of the node runtime: work queue, backoff, status diffing, planning."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as stx

from vkcompose.apiserver.patch import apply_strategic_merge_patch
from vkcompose.node import status as st
from vkcompose.node.heartbeat import node_conditions
from vkcompose.node.plan import key_of, plan, update_fingerprint
from vkcompose.node.queue import Backoff, ShutDown, WorkQueue
from vkcompose.node.registration import merge_taints, node_object
from vkcompose.node.settings import VirtualNode

# -- backoff ------------------------------------------------------------------------------------


@given(
    base=stx.floats(0.001, 10),
    cap=stx.floats(0.01, 100),
    failures=stx.integers(1, 200),
)
def test_backoff_grows_and_is_capped(base: float, cap: float, failures: int) -> None:
    b: Backoff[str] = Backoff(base=base, cap=cap, jitter=0.0)
    delays = [b.next_delay("k") for _ in range(failures)]
    assert all(0 < d <= cap for d in delays)
    assert delays == sorted(delays)
    assert b.failures("k") == failures
    b.forget("k")
    assert b.next_delay("k") == min(base, cap)


def test_backoff_honours_pushback_and_is_per_key() -> None:
    b: Backoff[str] = Backoff(base=0.1, cap=10.0, jitter=0.0)
    assert b.next_delay("a", at_least=3.0) == 3.0
    assert b.next_delay("b") == 0.1
    assert b.next_delay("a") == 0.2
    assert b.next_delay("c", at_least=99.0) == 10.0


# -- work queue ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_queue_deduplicates_waiting_keys() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in "abacab":
        q.add(k)
    assert len(q) == 3
    got = [await q.get() for _ in range(3)]
    assert got == ["a", "b", "c"]
    assert q.in_flight == 3


@pytest.mark.anyio
async def test_queue_serializes_a_key_and_requeues_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # added while processing: not handed out to a second worker
    q.add("a")
    assert len(q) == 0
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert q.idle()


@given(
    stx.lists(
        stx.tuples(stx.sampled_from(["add", "urgent", "get", "done"]), stx.sampled_from("abcd"))
    )
)
@settings(max_examples=300, deadline=None)
def test_queue_model(actions: list[tuple[str, str]]) -> None:
    """Against a model: a key is never held twice; every added key is eventually handed out;
    an urgent key waiting is served before ordinary ones (within the burst allowance)."""

    async def run() -> None:
        q: WorkQueue[str] = WorkQueue()
        held: set[str] = set()
        pending: set[str] = set()  # added since last handed out
        urgent: set[str] = set()  # added urgent since last handed out
        q.urgent_burst = 10_000 if len(actions) % 2 else 1
        for action, key in actions:
            if action in ("add", "urgent"):
                q.add(key, urgent=action == "urgent")
                pending.add(key)
                if action == "urgent":
                    urgent.add(key)
            elif action == "get" and len(q):
                waiting_urgent = {k for k in urgent if k not in held}
                k = await q.get()
                if waiting_urgent and q.urgent_burst > len(actions):
                    assert k in waiting_urgent
                urgent.discard(k)
                assert k not in held
                held.add(k)
                pending.discard(k)
            elif action == "done" and key in held:
                held.discard(key)
                q.done(key)
        for k in list(held):
            q.done(k)
        drained: set[str] = set()
        while len(q):
            k = await q.get()
            drained.add(k)
            q.done(k)
        assert pending <= drained

    anyio.run(run)


@pytest.mark.anyio
async def test_urgent_keys_go_first_but_ordinary_ones_are_not_starved() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.urgent_burst = 2
    for key in ["o1", "o2", "o3"]:
        q.add(key)
    for key in ["u1", "u2", "u3", "o2"]:  # o2 moves to the urgent lane
        q.add(key, urgent=True)
    order = []
    while len(q):
        key = await q.get()
        order.append(key)
        q.done(key)
    assert order == ["u1", "u2", "o1", "u3", "o2", "o3"]


def test_cancel_after_drops_only_the_schedule_it_names() -> None:
    now = [0.0]
    q: WorkQueue[str] = WorkQueue(clock=lambda: now[0])
    due = q.add_after("a", 5.0)
    assert due == 5.0 and q.delayed == 1
    q.cancel_after("a", 4.0)  # not the pending schedule: kept
    assert q.delayed == 1
    assert q.add_after("a", 9.0) is None  # the earlier schedule wins
    q.cancel_after("a", due)
    assert q.delayed == 0 and q.idle()
    now[0] = 10.0
    q._pop_due()
    assert len(q) == 0  # the cancelled schedule never fires


@pytest.mark.anyio
async def test_queue_add_after_and_shutdown() -> None:
    q: WorkQueue[str] = WorkQueue()
    async with anyio.create_task_group() as tg:
        tg.start_soon(q.run_timers)
        q.add_after("late", 0.05)
        q.add_after("later", 0.5)
        q.add_after("later", 0.01)  # an earlier schedule wins
        assert q.delayed == 2
        first = await q.get()
        second = await q.get()
        assert {first, second} == {"late", "later"}
        q.shutdown()
        with pytest.raises(ShutDown):
            await q.get()


@pytest.mark.anyio
async def test_queue_wakes_workers_in_parallel() -> None:
    q: WorkQueue[int] = WorkQueue()
    seen: list[int] = []
    all_seen = anyio.Event()

    async def worker() -> None:
        while True:
            try:
                k = await q.get()
            except ShutDown:
                return
            seen.append(k)
            if len(seen) == 100:
                all_seen.set()
            await anyio.lowlevel.checkpoint()
            q.done(k)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
        for i in range(100):
            q.add(i)
        await all_seen.wait()
        q.shutdown()
    assert sorted(seen) == list(range(100))


# -- status -------------------------------------------------------------------------------------

POD = {
    "metadata": {"name": "p", "namespace": "d", "uid": "u"},
    "spec": {"containers": [{"name": "app", "image": "x"}]},
}


def _running(ready: bool = True) -> dict[str, object]:
    return {
        "phase": "Running",
        "containerStatuses": [{"name": "app", "ready": ready, "state": {"running": {}}}],
    }


def test_desired_status_fills_gaps_and_conditions() -> None:
    out = st.desired_status(POD, _running(), host_ips=("10.0.0.1",), now="T")
    assert out["hostIP"] == "10.0.0.1"
    assert out["startTime"] == "T"
    conds = {c["type"]: c["status"] for c in out["conditions"]}
    assert conds["Ready"] == conds["ContainersReady"] == "True"
    assert conds["PodScheduled"] == "True"


def test_status_patch_none_when_unchanged_and_stable_transition_times() -> None:
    first = st.desired_status(POD, _running(), host_ips=("1.1.1.1",), now="T1")
    api = {**POD, "status": first}
    again = st.desired_status(api, _running(), host_ips=("1.1.1.1",), now="T2")
    assert st.status_patch(first, again) is None


def test_status_patch_clears_dropped_fields() -> None:
    failed = st.failure_status(POD, reason="ProviderFailed", message="boom", host_ips=(), now="T")
    assert failed["phase"] == "Pending" and failed["reason"] == "ProviderFailed"
    ok = st.desired_status({**POD, "status": failed}, _running(), host_ips=(), now="T2")
    patch = st.status_patch(failed, ok)
    assert patch is not None
    assert patch["reason"] is None and patch["message"] is None
    # condition fields that disappeared are nulled for the strategic merge
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] is None


def test_failure_status_never_restart_is_failed_and_container_reason() -> None:
    never = {**POD, "spec": {**POD["spec"], "restartPolicy": "Never"}}
    assert st.failure_status(never, reason="X", message="m", host_ips=(), now="T")["phase"] == (
        "Failed"
    )
    cfg = st.failure_status(
        POD,
        reason="CreateContainerConfigError",
        message="no cm",
        host_ips=(),
        now="T",
        container_reason=True,
    )
    assert cfg["phase"] == "Pending"
    waiting = cfg["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "CreateContainerConfigError", "message": "no cm"}


STATUS_VALUES = stx.fixed_dictionaries(
    {},
    optional={
        "phase": stx.sampled_from(["Pending", "Running", "Succeeded", "Failed"]),
        "reason": stx.sampled_from(["ProviderFailed", "Evicted"]),
        "message": stx.text(max_size=5),
        "podIP": stx.sampled_from(["10.0.0.1", "10.0.0.2"]),
        "podIPs": stx.lists(
            stx.fixed_dictionaries({"ip": stx.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1"])}),
            min_size=1,
            max_size=2,
            unique_by=lambda entry: entry["ip"],
        ),
        "hostIPs": stx.lists(
            stx.fixed_dictionaries({"ip": stx.sampled_from(["192.168.0.1", "192.168.0.2"])}),
            min_size=1,
            max_size=2,
            unique_by=lambda entry: entry["ip"],
        ),
        "conditions": stx.lists(
            stx.fixed_dictionaries(
                {
                    "type": stx.sampled_from(["Ready", "Initialized", "Custom"]),
                    "status": stx.sampled_from(["True", "False"]),
                },
                optional={"reason": stx.sampled_from(["A", "B"])},
            ),
            max_size=3,
            unique_by=lambda c: c["type"],
        ),
    },
)


@given(current=STATUS_VALUES, desired=STATUS_VALUES)
def test_status_patch_applied_reaches_desired(
    current: dict[str, object], desired: dict[str, object]
) -> None:
    """Applying the patch as the API server does (strategic merge) gives the desired owned
    fields and conditions, and keeps conditions of other types."""
    patch = st.status_patch(current, desired)
    result = apply_strategic_merge_patch({"status": current}, {"status": patch or {}}, "Pod")[
        "status"
    ]
    for field in st.OWNED_FIELDS:
        assert result.get(field) == desired.get(field)
    by_type = {c["type"]: c for c in result.get("conditions") or []}  # type: ignore[attr-defined]
    for c in desired.get("conditions") or []:  # type: ignore[attr-defined]
        got = by_type[c["type"]]
        assert {k: v for k, v in got.items()} == c
    wanted = {c["type"] for c in desired.get("conditions") or []}  # type: ignore[attr-defined]
    for c in current.get("conditions") or []:  # type: ignore[attr-defined]
        if c["type"] not in wanted:
            assert by_type[c["type"]] == c
    if patch is None:
        assert st.status_patch(result, desired) is None


def test_all_containers_terminated() -> None:
    assert st.all_containers_terminated(None)
    assert not st.all_containers_terminated(_running())
    assert st.all_containers_terminated({"phase": "Succeeded"})


# -- planning -----------------------------------------------------------------------------------


def _p(name: str, uid: str, node: str = "n", phase: str | None = None) -> dict[str, object]:
    pod: dict[str, object] = {
        "metadata": {"namespace": "d", "name": name, "uid": uid},
        "spec": {"nodeName": node},
    }
    if phase:
        pod["status"] = {"phase": phase}
    return pod


@given(
    api=stx.dictionaries(stx.sampled_from("abcdef"), stx.sampled_from(["1", "2"]), max_size=6),
    backend=stx.dictionaries(stx.sampled_from("abcdefgh"), stx.sampled_from(["1", "2"])),
    terminal=stx.sets(stx.sampled_from("abcdef")),
)
def test_plan_never_creates_what_the_backend_runs(
    api: dict[str, str], backend: dict[str, str], terminal: set[str]
) -> None:
    api_pods = {
        ("d", n): _p(n, u, phase="Succeeded" if n in terminal else None) for n, u in api.items()
    }
    backend_pods = [_p(n, u) for n, u in backend.items()]
    result = plan(api_pods, backend_pods, node_names={"n"})
    created = set(result.create)
    adopted = set(result.adopt)
    deleted = {key_of(p) for p in result.delete}
    for n, u in backend.items():
        key = ("d", n)
        if api.get(n) == u:
            assert key in adopted and key not in created
        else:
            assert key in deleted
    for n in api:
        key = ("d", n)
        if key not in adopted:
            assert (key in created) == (n not in terminal)


def test_plan_leaves_pods_of_other_nodes_alone() -> None:
    result = plan({}, [_p("x", "1", node="other")], node_names={"n"})
    assert result.delete == []


def test_update_fingerprint_tracks_mutable_fields_only() -> None:
    base = {"spec": {"containers": [{"name": "a", "image": "1"}], "activeDeadlineSeconds": 5}}
    assert update_fingerprint(base) != update_fingerprint(
        {"spec": {**base["spec"], "activeDeadlineSeconds": 6}}
    )
    assert update_fingerprint(base) == update_fingerprint(
        {**base, "metadata": {"labels": {"a": "b"}}}
    )
    dapi = {
        "spec": {
            **base["spec"],
            "volumes": [
                {
                    "name": "info",
                    "projected": {
                        "sources": [
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "a",
                                            "fieldRef": {"fieldPath": "metadata.annotations"},
                                        }
                                    ]
                                }
                            }
                        ]
                    },
                }
            ],
        }
    }
    assert update_fingerprint(dapi) != update_fingerprint(
        {**dapi, "metadata": {"annotations": {"x": "y"}}}
    )


# -- node ---------------------------------------------------------------------------------------


def test_node_object_and_taints() -> None:
    vn = VirtualNode(name="vk", backend=object(), labels={"team": "a"}, kubelet_port=10555)
    obj = node_object(vn, "vk-0")
    assert obj["metadata"]["labels"]["team"] == "a"
    assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == "vk-0"
    assert obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10555
    assert obj["status"]["nodeInfo"]["kubeletVersion"].startswith("vkcompose/")
    assert obj["spec"]["taints"][0]["key"] == "virtual-kubelet.io/provider"
    assert node_object(VirtualNode(name="v", backend=object(), taints=[]), "v")["spec"] == {
        "taints": []
    }
    merged = merge_taints(
        [
            {"key": "virtual-kubelet.io/provider", "value": "old", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
        ],
        obj["spec"]["taints"],
    )
    assert [t.get("value") for t in merged] == ["vk", None]


def test_node_conditions() -> None:
    ok = node_conditions(healthy=True, message="", now="T1")
    assert {c["type"]: c["status"] for c in ok}["Ready"] == "True"
    down = node_conditions(healthy=False, message="boom", previous=ok, now="T2")
    ready = next(c for c in down if c["type"] == "Ready")
    assert ready["status"] == "False" and "boom" in ready["message"]
    assert ready["lastTransitionTime"] == "T2"
    mem = next(c for c in down if c["type"] == "MemoryPressure")
    assert mem["lastTransitionTime"] == "T1" and mem["lastHeartbeatTime"] == "T2"
    pressure = node_conditions(
        healthy=True, message="", backend=[{"type": "DiskPressure", "status": "True"}], now="T"
    )
    assert {c["type"]: c["status"] for c in pressure}["DiskPressure"] == "True"


@given(stx.lists(stx.floats(min_value=-1e9, max_value=4e9, allow_nan=False), max_size=20))
def test_rfc3339_cache_formats_every_moment_as_datetime_does(moments: list[float]) -> None:
    from datetime import UTC, datetime

    from vkcompose.node.events import rfc3339

    for ts in moments + moments[::-1]:
        expected = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert rfc3339(ts) == expected


def test_ready_lists_every_readiness_gate_that_holds_it_back() -> None:
    """The kubelet's message joins one line per unready gate with ", " (kubelet status
    generation); gates that are True add nothing, and Ready is True once all are."""
    pod: dict[str, Any] = {
        "spec": {"readinessGates": [{"conditionType": g} for g in ("a", "b", "c")]},
        "status": {
            "conditions": [{"type": "b", "status": "False"}, {"type": "c", "status": "True"}]
        },
    }
    ready_for_containers = [
        {"type": "ContainersReady", "status": "True"},
        {"type": "Ready", "status": "True"},
    ]
    [ready] = [
        c for c in st.apply_readiness_gates(pod, ready_for_containers) if c["type"] == "Ready"
    ]
    assert ready == {
        "type": "Ready",
        "status": "False",
        "reason": "ReadinessGatesNotReady",
        "message": 'corresponding condition of pod readiness gate "a" does not exist., '
        'the status of pod readiness gate "b" is not "True", but False',
    }
    for condition in pod["status"]["conditions"]:
        condition["status"] = "True"
    pod["status"]["conditions"].append({"type": "a", "status": "True"})
    [ready] = [
        c for c in st.apply_readiness_gates(pod, ready_for_containers) if c["type"] == "Ready"
    ]
    assert ready == {"type": "Ready", "status": "True"}
