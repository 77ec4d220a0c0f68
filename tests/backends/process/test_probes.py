"""Probes (readiness flips Ready, liveness restarts, startup gates) and postStart hooks."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from processkit import condition, container, make_pod, phase_is, sh, share_dir, wait_for

from vkcompose.backends.process import ProcessBackend

pytestmark = pytest.mark.anyio


def exec_probe(path: str, **timing: int) -> dict[str, object]:
    """A probe succeeding while ``path`` exists (timings in test-scaled seconds)."""
    return {"exec": {"command": ["test", "-e", path]}, "periodSeconds": 1, **timing}


async def test_readiness_probe_flips_ready(backend: ProcessBackend, tmp_path: Path) -> None:
    pod = make_pod("ready", sh("main", "sleep 300"), restart_policy="Always")
    shared = share_dir(pod, backend, tmp_path)
    pod["spec"]["containers"][0]["readinessProbe"] = exec_probe(f"{shared}/ready")
    await backend.create_pod(pod)
    status = await wait_for(backend, "ready", phase_is("Running"))
    assert condition(status, "Ready") == "False"
    (tmp_path / "ready").touch()
    await wait_for(backend, "ready", lambda s: condition(s, "Ready") == "True")
    (tmp_path / "ready").unlink()
    status = await wait_for(backend, "ready", lambda s: condition(s, "Ready") == "False")
    assert container(status, "main")["ready"] is False
    assert container(status, "main")["restartCount"] == 0


async def test_liveness_probe_restarts_container(backend: ProcessBackend, tmp_path: Path) -> None:
    pod = make_pod("live", sh("main", "sleep 300"), restart_policy="Always")
    shared = share_dir(pod, backend, tmp_path)
    probe = exec_probe(f"{shared}/alive", failureThreshold=2, terminationGracePeriodSeconds=1)
    pod["spec"]["containers"][0]["livenessProbe"] = probe
    (tmp_path / "alive").touch()
    await backend.create_pod(pod)
    await wait_for(backend, "live", phase_is("Running"))
    await anyio.sleep(0.3)
    status = await backend.get_pod_status("default", "live")
    assert container(status["status"], "main")["restartCount"] == 0
    (tmp_path / "alive").unlink()
    status = await wait_for(
        backend, "live", lambda s: container(s, "main")["restartCount"] >= 1, seconds=15
    )
    assert container(status, "main")["lastState"]["terminated"]["exitCode"] == 143


async def test_startup_probe_gates_started_and_readiness(
    backend: ProcessBackend, tmp_path: Path
) -> None:
    pod = make_pod("startup", sh("main", "sleep 300"), restart_policy="Always")
    shared = share_dir(pod, backend, tmp_path)
    pod["spec"]["containers"][0]["startupProbe"] = exec_probe(
        f"{shared}/started", failureThreshold=1000
    )
    await backend.create_pod(pod)
    status = await wait_for(backend, "startup", phase_is("Running"))
    await anyio.sleep(0.2)
    status = (await backend.get_pod_status("default", "startup"))["status"]
    assert container(status, "main")["started"] is False
    assert condition(status, "Ready") == "False"
    (tmp_path / "started").touch()
    status = await wait_for(backend, "startup", lambda s: condition(s, "Ready") == "True")
    assert container(status, "main")["started"] is True


async def test_tcp_and_http_probes(backend: ProcessBackend, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = {
        "name": "web",
        "image": "python",
        "command": ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        "readinessProbe": {
            "httpGet": {"path": "/", "port": port},
            "periodSeconds": 1,
            "timeoutSeconds": 20,
        },
        "livenessProbe": {
            "tcpSocket": {"port": port},
            "periodSeconds": 1,
            "initialDelaySeconds": 40,
            "timeoutSeconds": 20,
        },
        "workingDir": "/",
    }
    await backend.create_pod(make_pod("web", server, restart_policy="Always"))
    status = await wait_for(backend, "web", lambda s: condition(s, "Ready") == "True")
    assert container(status, "web")["restartCount"] == 0


async def test_failed_post_start_hook_kills_container(backend: ProcessBackend) -> None:
    main = sh("main", "sleep 300")
    main["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", "exit 1"]}}}
    await backend.create_pod(make_pod("poststart", main, terminationGracePeriodSeconds=1))
    status = await wait_for(backend, "poststart", phase_is("Failed"))
    assert container(status, "main")["state"]["terminated"]["exitCode"] == 143


async def test_readiness_gate_from_pod_update(backend: ProcessBackend) -> None:
    pod = make_pod("gated", sh("main", "sleep 300"), readinessGates=[{"conditionType": "x.io/lb"}])
    await backend.create_pod(pod)
    status = await wait_for(backend, "gated", phase_is("Running"))
    status = await wait_for(backend, "gated", lambda s: condition(s, "ContainersReady") == "True")
    assert condition(status, "Ready") == "False"
    updated = {**pod, "status": {"conditions": [{"type": "x.io/lb", "status": "True"}]}}
    await backend.update_pod(updated)
    await wait_for(backend, "gated", lambda s: condition(s, "Ready") == "True")
