"""Server-side Table rendering against kube-apiserver's printers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.apiserver.tables import human_duration, to_table

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


# Cases from k8s.io/apimachinery/pkg/util/duration/duration_test.go (TestHumanDuration).
@pytest.mark.parametrize(
    ("seconds", "want"),
    [
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (1, "1s"),
        (70, "70s"),
        (119, "119s"),
        (120, "2m"),
        (190, "3m10s"),
        (200, "3m20s"),
        (70 * 60, "70m"),
        (179 * 60, "179m"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (7 * 3600, "7h"),
        (47 * 3600, "47h"),
        (49 * 3600, "2d1h"),
        (51 * 3600, "2d3h"),
        (72 * 3600, "3d"),
        ((8 * 24 + 2) * 3600, "8d"),
        (367 * 24 * 3600, "367d"),
        ((365 * 2 * 24 + 25) * 3600, "2y1d"),
        ((365 * 8 * 24 + 2) * 3600, "8y"),
    ],
)
def test_human_duration(seconds: int, want: str) -> None:
    assert human_duration(seconds) == want


@given(st.integers(0, 10**10))
def test_human_duration_is_monotone_in_units(seconds: int) -> None:
    out = human_duration(seconds)
    assert out and out[0].isdigit() and out[-1] in "smhdy"


def _cells(kind: str, obj: dict[str, Any]) -> list[Any]:
    table = to_table(kind, [obj], now=NOW)
    row = table["rows"][0]
    assert len(row["cells"]) == len(table["columnDefinitions"])
    return list(row["cells"])


def _pod(
    status: dict[str, Any], spec: dict[str, Any] | None = None, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": "default",
            "creationTimestamp": ago(minutes=5),
            **(meta or {}),
        },
        "spec": spec or {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": status,
    }


def _running(name: str, ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
        **extra,
    }


def _waiting(name: str, reason: str, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
        **extra,
    }


def _terminated(name: str, reason: str = "", code: int = 0, signal: int = 0) -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": code}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}}


# Pod STATUS cases after pkg/printers/internalversion/printers_test.go (TestPrintPod,
# TestPrintPodwide, TestPrintNonTerminatedPod) and kubectl's documented output.
@pytest.mark.parametrize(
    ("status", "spec", "meta", "ready", "reason", "restarts"),
    [
        ({"phase": "Pending"}, None, None, "0/2", "Pending", "0"),
        (
            {"phase": "Running", "containerStatuses": [_running("a"), _running("b")]},
            None,
            None,
            "2/2",
            "Running",
            "0",
        ),
        (
            {
                "phase": "Running",
                "containerStatuses": [
                    _running("a", restarts=3),
                    _waiting("b", "CrashLoopBackOff", restarts=6),
                ],
            },
            None,
            None,
            "1/2",
            "CrashLoopBackOff",
            "9",
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    _waiting("a", "ContainerCreating"),
                    _waiting("b", "ContainerCreating"),
                ],
            },
            None,
            None,
            "0/2",
            "ContainerCreating",
            "0",
        ),
        (
            {
                "phase": "Succeeded",
                "containerStatuses": [_terminated("a", "Completed"), _terminated("b", "Completed")],
            },
            None,
            None,
            "0/2",
            "Completed",
            "0",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [_terminated("a", "Error", 1), _terminated("b", "Completed")],
            },
            None,
            None,
            "0/2",
            "Error",
            "0",
        ),
        (
            {"phase": "Running", "containerStatuses": [_terminated("a", code=2), _running("b")]},
            None,
            None,
            "1/2",
            "ExitCode:2",
            "0",
        ),
        (
            {
                "phase": "Running",
                "containerStatuses": [_terminated("a", code=137, signal=9), _running("b")],
            },
            None,
            None,
            "1/2",
            "Signal:9",
            "0",
        ),
        (
            {
                "phase": "Running",
                "containerStatuses": [_terminated("a", "Completed"), _running("b")],
                "conditions": [{"type": "Ready", "status": "False"}],
            },
            None,
            None,
            "1/2",
            "NotReady",
            "0",
        ),
        (
            {
                "phase": "Running",
                "containerStatuses": [_terminated("a", "Completed"), _running("b")],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
            None,
            None,
            "1/2",
            "Running",
            "0",
        ),
        (
            {"phase": "Running", "containerStatuses": [_running("a"), _running("b")]},
            None,
            {"deletionTimestamp": ago(seconds=5)},
            "2/2",
            "Terminating",
            "0",
        ),
        (
            {
                "phase": "Running",
                "reason": "NodeLost",
                "containerStatuses": [_running("a"), _running("b")],
            },
            None,
            {"deletionTimestamp": ago(seconds=5)},
            "2/2",
            "Unknown",
            "0",
        ),
        (
            {"phase": "Succeeded"},
            None,
            {"deletionTimestamp": ago(seconds=5)},
            "0/2",
            "Succeeded",
            "0",
        ),
        ({"phase": "Failed", "reason": "Evicted"}, None, None, "0/2", "Evicted", "0"),
        (
            {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ],
            },
            None,
            None,
            "0/2",
            "SchedulingGated",
            "0",
        ),
        # init containers
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    _terminated("i1", "Completed"),
                    _waiting("i2", "PodInitializing"),
                ],
            },
            {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            None,
            "0/1",
            "Init:1/2",
            "0",
        ),
        (
            {"phase": "Pending", "initContainerStatuses": [_waiting("i1", "ImagePullBackOff")]},
            {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            None,
            "0/1",
            "Init:ImagePullBackOff",
            "0",
        ),
        (
            {"phase": "Pending", "initContainerStatuses": [_terminated("i1", code=3)]},
            {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            None,
            "0/1",
            "Init:ExitCode:3",
            "0",
        ),
        (
            {"phase": "Pending", "initContainerStatuses": [_terminated("i1", "OOMKilled", 137)]},
            {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            None,
            "0/1",
            "Init:OOMKilled",
            "0",
        ),
        (
            {"phase": "Pending", "initContainerStatuses": [_terminated("i1", code=1, signal=15)]},
            {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            None,
            "0/1",
            "Init:Signal:15",
            "0",
        ),
        # a restartable (sidecar) init container counts towards READY
        (
            {
                "phase": "Running",
                "initContainerStatuses": [_running("side", started=True, restarts=2)],
                "containerStatuses": [_running("a")],
                "conditions": [{"type": "Initialized", "status": "True"}],
            },
            {
                "initContainers": [{"name": "side", "restartPolicy": "Always"}],
                "containers": [{"name": "a"}],
            },
            None,
            "2/2",
            "Running",
            "2",
        ),
    ],
)
def test_pod_status_column(
    status: dict[str, Any],
    spec: dict[str, Any] | None,
    meta: dict[str, Any] | None,
    ready: str,
    reason: str,
    restarts: str,
) -> None:
    cells = _cells("Pod", _pod(status, spec, meta))
    assert cells[1:4] == [ready, reason, restarts]


def test_pod_columns_wide_and_restart_age() -> None:
    last = {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=3)}}
    pod = _pod(
        {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
            "containerStatuses": [_running("a", restarts=2, lastState=last), _running("b")],
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "gate", "status": "True"}],
        },
        {
            "containers": [{"name": "a"}, {"name": "b"}],
            "nodeName": "vk-1",
            "readinessGates": [{"conditionType": "gate"}, {"conditionType": "other"}],
        },
    )
    table = to_table("Pod", [pod], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert table["rows"][0]["cells"] == [
        "p",
        "2/2",
        "Running",
        "2 (3m ago)",
        "5m",
        "10.0.0.7",
        "vk-1",
        "<none>",
        "1/2",
    ]
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    unscheduled = _cells("Pod", {"metadata": {"name": "x"}, "spec": {}, "status": {}})
    assert unscheduled == ["x", "0/0", "", "0", "<unknown>", "<none>", "<none>", "<none>", "<none>"]


def test_row_conditions_for_finished_pods() -> None:
    done = to_table("Pod", [_pod({"phase": "Succeeded"})], now=NOW)["rows"][0]
    assert done["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    running = to_table("Pod", [_pod({"phase": "Running"})], now=NOW)["rows"][0]
    assert "conditions" not in running


def test_include_object() -> None:
    obj = {"metadata": {"name": "c", "namespace": "d", "uid": "u"}, "data": {"a": "1"}}
    meta = to_table("ConfigMap", [obj])["rows"][0]["object"]
    assert meta == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    assert to_table("ConfigMap", [obj], include_object="Object")["rows"][0]["object"] == obj
    assert to_table("ConfigMap", [obj], include_object="None")["rows"][0]["object"] is None
    with pytest.raises(ValueError):
        to_table("ConfigMap", [obj], include_object="Everything")
    assert to_table("Pod", [], now=NOW)["rows"] == []


def _node(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "n1",
            "creationTimestamp": ago(days=2, hours=3),
            "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/": "x",
                "kubernetes.io/role": "agent",
                "type": "virtual-kubelet",
            },
        },
        "spec": {},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "10.1.0.1"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.31.0-vk",
                "osImage": "",
                "kernelVersion": "6.1",
                "containerRuntimeVersion": "vk://0.1",
            },
            **status,
        },
    }


def test_node_columns() -> None:
    assert _cells("Node", _node()) == [
        "n1",
        "Ready",
        "agent,control-plane",
        "2d3h",
        "v1.31.0-vk",
        "10.1.0.1",
        "<none>",
        "<unknown>",
        "6.1",
        "vk://0.1",
    ]
    not_ready = _node(conditions=[{"type": "Ready", "status": "Unknown"}])
    not_ready["spec"]["unschedulable"] = True
    assert _cells("Node", not_ready)[1] == "NotReady,SchedulingDisabled"
    assert _cells("Node", _node(conditions=[]))[1] == "Unknown"
    bare = {"metadata": {"name": "b"}}
    assert _cells("Node", bare)[1:3] == ["Unknown", "<none>"]


def test_other_kinds() -> None:
    created = ago(seconds=42)
    ns = {
        "metadata": {"name": "default", "creationTimestamp": created},
        "status": {"phase": "Active"},
    }
    assert _cells("Namespace", ns) == ["default", "Active", "42s"]
    cm = {
        "metadata": {"name": "c", "creationTimestamp": created},
        "data": {"a": "1", "b": "2"},
        "binaryData": {"c": "AA=="},
    }
    assert _cells("ConfigMap", cm) == ["c", 3, "42s"]
    secret = {
        "metadata": {"name": "s", "creationTimestamp": created},
        "type": "Opaque",
        "data": {"a": "MQ=="},
    }
    assert _cells("Secret", secret) == ["s", "Opaque", 1, "42s"]
    sa = {"metadata": {"name": "default", "creationTimestamp": created}}
    assert _cells("ServiceAccount", sa) == ["default", 0, "42s"]
    lease = {
        "metadata": {"name": "n1", "creationTimestamp": created},
        "spec": {"holderIdentity": "n1"},
    }
    assert _cells("Lease", lease) == ["n1", "n1", "42s"]
    assert _cells("Lease", {"metadata": {"name": "x"}, "spec": {}})[1] == "<unknown>"
    other = {"metadata": {"name": "x", "creationTimestamp": created}}
    table = to_table("Widget", [other], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"] == ["x", "42s"]


def test_services() -> None:
    svc = {
        "metadata": {"name": "kubernetes", "creationTimestamp": ago(hours=1)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.1",
            "clusterIPs": ["10.96.0.1"],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }
    assert _cells("Service", svc) == [
        "kubernetes",
        "ClusterIP",
        "10.96.0.1",
        "<none>",
        "443/TCP",
        "60m",
        "<none>",
    ]
    np = {
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "clusterIPs": ["10.96.0.9"],
            "selector": {"b": "2", "a": "1"},
            "externalIPs": ["1.2.3.4"],
            "ports": [
                {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"},
            ],
        },
    }
    assert _cells("Service", np)[1:5] == ["NodePort", "10.96.0.9", "1.2.3.4", "80:30080/TCP,53/UDP"]
    assert _cells("Service", np)[6] == "a=1,b=2"
    lb = {
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "x.io"}]}},
    }
    assert _cells("Service", lb)[3] == "5.6.7.8,x.io"
    pending = {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}}
    assert _cells("Service", pending)[2:5] == ["<none>", "<pending>", "<none>"]
    ext = {"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "a.b"}}
    assert _cells("Service", ext)[3] == "a.b"


def test_events() -> None:
    ev = {
        "metadata": {"name": "p.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"},
        "reason": "Started",
        "message": "Started container a \n",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "vk-1"},
        "firstTimestamp": ago(minutes=10),
        "lastTimestamp": ago(seconds=30),
        "count": 3,
    }
    assert _cells("Event", ev) == [
        "30s",
        "Normal",
        "Started",
        "pod/p",
        "spec.containers{a}",
        "kubelet, vk-1",
        "Started container a",
        "10m",
        3,
        "p.1",
    ]
    new_style = {
        "metadata": {"name": "n.2"},
        "involvedObject": {"kind": "Node"},
        "eventTime": ago(seconds=5),
        "reportingComponent": "vk",
        "type": "Warning",
        "reason": "X",
    }
    cells = _cells("Event", new_style)
    assert cells[0] == "5s" and cells[3] == "node" and cells[5] == "vk" and cells[8] == 1
    series = dict(new_style, series={"count": 7, "lastObservedTime": ago(seconds=1)})
    assert _cells("Event", series)[0] == "1s" and _cells("Event", series)[8] == 7


_garbage = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "metadata",
                    "spec",
                    "status",
                    "name",
                    "containers",
                    "containerStatuses",
                    "state",
                    "waiting",
                    "terminated",
                    "reason",
                    "conditions",
                    "type",
                    "initContainerStatuses",
                    "labels",
                    "ports",
                    "involvedObject",
                    "series",
                    "data",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@given(
    st.sampled_from(
        [
            "Pod",
            "Node",
            "Namespace",
            "ConfigMap",
            "Secret",
            "Service",
            "ServiceAccount",
            "Event",
            "Lease",
            "Other",
        ]
    ),
    st.dictionaries(st.sampled_from(["metadata", "spec", "status"]), _garbage, max_size=3),
)
def test_garbage_objects_render(kind: str, obj: dict[str, Any]) -> None:
    table = to_table(kind, [obj], now=NOW)
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])
