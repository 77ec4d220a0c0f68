"""Pure status logic: pod phase and conditions from container statuses; back-off; images."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.backends.process.images import ImageEntry, ImageMap, normalize_image
from vkcompose.backends.process.sandbox import container_mounts, expand
from vkcompose.backends.process.status import pod_conditions, pod_phase
from vkcompose.backends.process.supervisor import backoff_delay, should_restart
from vkcompose.errors import InvalidInput


def running(name: str, ready: bool = True) -> dict[str, Any]:
    return {"name": name, "state": {"running": {}}, "ready": ready, "started": True}


def terminated(name: str, code: int) -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code}}, "ready": False}


def waiting(name: str, last_code: int | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"name": name, "state": {"waiting": {"reason": "X"}}, "ready": False}
    if last_code is not None:
        st["lastState"] = {"terminated": {"exitCode": last_code}}
    return st


def spec(policy: str, *names: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "restartPolicy": policy,
        "containers": [{"name": n} for n in names],
        "initContainers": [{"name": n} for n in init],
    }


def test_phase_table() -> None:
    assert pod_phase(spec("Always", "a"), [], [waiting("a")]) == "Pending"
    assert pod_phase(spec("Always", "a"), [], [running("a")]) == "Running"
    assert pod_phase(spec("Always", "a"), [], [terminated("a", 0)]) == "Running"
    assert pod_phase(spec("OnFailure", "a"), [], [terminated("a", 1)]) == "Running"
    assert pod_phase(spec("OnFailure", "a"), [], [terminated("a", 0)]) == "Succeeded"
    assert pod_phase(spec("Never", "a", "b"), [], [terminated("a", 0), terminated("b", 2)]) == (
        "Failed"
    )
    assert pod_phase(spec("Always", "a"), [], [waiting("a", last_code=1)]) == "Running"
    assert pod_phase(spec("Always", "a"), [], []) == "Pending"


def test_phase_with_init_containers() -> None:
    s = spec("Never", "a", init=("i",))
    assert pod_phase(s, [running("i")], [waiting("a")]) == "Pending"
    assert pod_phase(s, [terminated("i", 1)], [waiting("a")]) == "Failed"
    assert pod_phase(s, [terminated("i", 0)], [running("a")]) == "Running"
    s2 = spec("OnFailure", "a", init=("i",))
    assert pod_phase(s2, [waiting("i", last_code=1)], [waiting("a")]) == "Pending"


def test_sidecar_counts_as_running() -> None:
    s = {
        "restartPolicy": "Never",
        "containers": [{"name": "a"}],
        "initContainers": [{"name": "side", "restartPolicy": "Always"}],
    }
    assert pod_phase(s, [running("side")], [terminated("a", 0)]) == "Running"
    assert pod_phase(s, [terminated("side", 143)], [terminated("a", 0)]) == "Succeeded"


def conds(result: list[dict[str, Any]]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in result}


def test_conditions() -> None:
    s = spec("Always", "a", "b", init=("i",))
    c = pod_conditions(s, "Pending", [running("i")], [waiting("a"), waiting("b")], now="t1")
    assert conds(c) == {
        "PodReadyToStartContainers": "True",
        "Initialized": "False",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    }
    init = next(x for x in c if x["type"] == "Initialized")
    assert init["message"] == "containers with incomplete status: [i]"
    c2 = pod_conditions(
        s,
        "Running",
        [terminated("i", 0)],
        [running("a"), running("b", ready=False)],
        now="t2",
        previous=c,
    )
    ready = next(x for x in c2 if x["type"] == "Ready")
    assert ready["message"] == "containers with unready status: [b]"
    assert ready["lastTransitionTime"] == "t1"  # still False: transition time kept
    assert next(x for x in c2 if x["type"] == "Initialized")["lastTransitionTime"] == "t2"
    done = pod_conditions(s, "Succeeded", [terminated("i", 0)], [terminated("a", 0)] * 2, now="t")
    assert next(x for x in done if x["type"] == "Ready")["reason"] == "PodCompleted"


def test_readiness_gates() -> None:
    s = {**spec("Always", "a"), "readinessGates": [{"conditionType": "example.com/lb"}]}
    c = conds(pod_conditions(s, "Running", [], [running("a")], now="t"))
    assert c["ContainersReady"] == "True" and c["Ready"] == "False"
    g = pod_conditions(s, "Running", [], [running("a")], now="t", gates={"example.com/lb": True})
    assert conds(g)["Ready"] == "True"


@given(st.integers(min_value=0, max_value=200), st.floats(0.01, 20), st.floats(1, 600))
def test_backoff_doubles_and_caps(n: int, base: float, cap: float) -> None:
    delay = backoff_delay(n, base, cap)
    assert delay <= cap
    assert delay == min(base * 2**n, cap) if n < 64 else delay == cap
    assert backoff_delay(n + 1, base, cap) >= delay


@given(st.sampled_from(["Always", "OnFailure", "Never"]), st.integers(0, 255))
def test_restart_rules(policy: str, code: int) -> None:
    regular = should_restart(policy, code, init=False, sidecar=False)
    assert regular == (policy == "Always" or (policy == "OnFailure" and code != 0))
    init = should_restart(policy, code, init=True, sidecar=False)
    assert init == (policy != "Never" and code != 0)
    assert should_restart(policy, code, init=True, sidecar=True)


def test_image_mapping() -> None:
    images = ImageMap({"busybox": ImageEntry(cmd=("sh",)), "team/*": ImageEntry(("run",))})
    assert images.command({"image": "busybox:1.36"}) == ["sh"]
    assert images.command({"image": "busybox", "args": ["-c", "true"]}) == ["-c", "true"]
    assert images.command({"image": "registry.io:5000/team/app:v1"}) is None
    assert images.command({"image": "team/app:v1", "args": ["x"]}) == ["run", "x"]
    assert normalize_image("docker.io/library/busybox:latest") == "busybox"


@given(st.text(alphabet="ab$()_", max_size=30))
def test_expand_without_variables_only_unescapes(text: str) -> None:
    result = expand(text, {})
    assert result == expand(text, {"unused": "zzz"})
    assert "zzz" not in result


def test_sub_path_expr_needs_every_variable_it_names(tmp_path: Any) -> None:
    """The kubelet fails a container whose subPathExpr names a variable that is unset or
    empty ("missing value for …"), rather than mounting a literal ``$(VAR)`` directory."""
    pod = {"spec": {"volumes": [{"name": "data", "emptyDir": {}}]}}

    def container(expr: str) -> dict[str, Any]:
        mount = {"name": "data", "mountPath": "/data", "subPathExpr": expr}
        return {"name": "c", "volumeMounts": [mount]}

    paths = {"data": str(tmp_path)}
    env = {"POD": "web", "EMPTY": ""}
    [mount] = container_mounts(pod, container("logs/$(POD)"), paths, env, lambda *_: None)
    assert mount.source == str(tmp_path / "logs" / "web")
    for expr, missing in (("$(NOPE)/$(POD)", "NOPE"), ("$(EMPTY)$(ALSO)", "ALSO, EMPTY")):
        with pytest.raises(InvalidInput) as info:
            container_mounts(pod, container(expr), paths, env, lambda *_: None)
        assert info.value.message == f"missing value for {missing}"
        assert info.value.reason == "CreateContainerConfigError"
    assert not (tmp_path / "$(NOPE)").exists()
