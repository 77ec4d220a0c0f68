"""Pod lifecycle with real processes: phases, exit codes, restart policies, init containers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from processkit import condition, container, make_pod, phase_is, sh, share_dir, wait_for

from vkcompose.backends.process import ImageEntry, ImageMap, ProcessBackend

# the interpreter itself, not a venv link: a pod's private /tmp hides paths under /tmp
PYTHON = os.path.realpath(sys.executable)

pytestmark = pytest.mark.anyio


async def test_succeeded_with_exit_code_zero(any_backend: ProcessBackend) -> None:
    pod = make_pod("ok", sh("main", "exit 0"))
    await any_backend.create_pod(pod)
    status = await wait_for(any_backend, "ok", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"
    term = container(status, "main")["state"]["terminated"]
    assert term["exitCode"] == 0
    assert term["reason"] == "Completed"
    assert term["startedAt"] and term["finishedAt"]
    assert condition(status, "Ready") == "False"
    assert status["podIP"] == status["hostIP"] == "127.0.0.1"


async def test_failed_with_exit_code(any_backend: ProcessBackend) -> None:
    pod = make_pod("bad", sh("main", "exit 7"), sh("other", "exit 0"))
    await any_backend.create_pod(pod)
    status = await wait_for(any_backend, "bad", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Failed"
    assert container(status, "main")["state"]["terminated"]["exitCode"] == 7
    assert container(status, "main")["state"]["terminated"]["reason"] == "Error"
    assert container(status, "other")["state"]["terminated"]["exitCode"] == 0


async def test_killed_by_signal_reports_signal(backend: ProcessBackend) -> None:
    # "$$" is Kubernetes' escape for "$": the shell sees "kill -9 $$"
    await backend.create_pod(make_pod("sig", sh("main", "kill -9 $$$$")))
    status = await wait_for(backend, "sig", phase_is("Failed"))
    term = container(status, "main")["state"]["terminated"]
    assert term["exitCode"] == 137
    assert term["signal"] == 9


async def test_running_then_ready(any_backend: ProcessBackend) -> None:
    await any_backend.create_pod(make_pod("run", sh("main", "sleep 30")))
    status = await wait_for(
        any_backend, "run", lambda s: s["phase"] == "Running" and condition(s, "Ready") == "True"
    )
    main = container(status, "main")
    assert "running" in main["state"]
    assert main["ready"] is True and main["started"] is True
    assert condition(status, "ContainersReady") == "True"
    assert condition(status, "Initialized") == "True"
    assert condition(status, "PodScheduled") == "True"


async def test_restart_always_backs_off_and_counts(backend: ProcessBackend) -> None:
    await backend.create_pod(make_pod("loop", sh("main", "exit 1"), restart_policy="Always"))
    status = await wait_for(backend, "loop", lambda s: container(s, "main")["restartCount"] >= 3)
    main = container(status, "main")
    assert status["phase"] in ("Running", "Pending")
    assert main["lastState"]["terminated"]["exitCode"] == 1
    seen_backoff = await wait_for(
        backend, "loop", lambda s: "waiting" in container(s, "main")["state"]
    )
    waiting = container(seen_backoff, "main")["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"
    assert "back-off" in waiting["message"]


async def test_restart_on_failure_stops_after_success(
    backend: ProcessBackend, tmp_path: Any
) -> None:
    pod = make_pod("onf", sh("main", ""), restart_policy="OnFailure")
    marker = share_dir(pod, backend, tmp_path) + "/marker"
    script = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 2"
    pod["spec"]["containers"][0]["command"][2] = script
    await backend.create_pod(pod)
    status = await wait_for(backend, "onf", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"
    main = container(status, "main")
    assert main["restartCount"] == 1
    assert main["lastState"]["terminated"]["exitCode"] == 2


async def test_restart_never_does_not_restart(backend: ProcessBackend) -> None:
    await backend.create_pod(make_pod("never", sh("main", "exit 4")))
    status = await wait_for(backend, "never", phase_is("Failed"))
    assert container(status, "main")["restartCount"] == 0


async def test_init_containers_run_in_order(backend: ProcessBackend, tmp_path: Any) -> None:
    init = [sh("one", "echo one >> $(OUT)"), sh("two", "echo two >> $(OUT)")]
    pod = make_pod("init", sh("main", "echo main >> $(OUT)"), init=init)
    shared = share_dir(pod, backend, tmp_path)
    for c in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
        c["env"] = [{"name": "OUT", "value": f"{shared}/order"}]
    out = tmp_path / "order"
    await backend.create_pod(pod)
    status = await wait_for(backend, "init", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"
    assert out.read_text().split() == ["one", "two", "main"]
    assert container(status, "one", init=True)["state"]["terminated"]["reason"] == "Completed"
    assert condition(status, "Initialized") == "True"


async def test_failing_init_container_fails_pod_under_never(backend: ProcessBackend) -> None:
    pod = make_pod("initfail", sh("main", "exit 0"), init=[sh("setup", "exit 3")])
    await backend.create_pod(pod)
    status = await wait_for(backend, "initfail", phase_is("Failed"))
    assert container(status, "setup", init=True)["state"]["terminated"]["exitCode"] == 3
    assert "waiting" in container(status, "main")["state"]
    assert condition(status, "Initialized") == "False"


async def test_failing_init_container_retries_under_on_failure(
    backend: ProcessBackend, tmp_path: Any
) -> None:
    script = "if [ -e /shared/m ]; then exit 0; fi; touch /shared/m; exit 3"
    setup = sh("setup", script)
    pod = make_pod("initretry", sh("main", "exit 0"), init=[setup], restart_policy="OnFailure")
    assert share_dir(pod, backend, tmp_path) == "/shared"
    await backend.create_pod(pod)
    status = await wait_for(backend, "initretry", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"
    assert container(status, "setup", init=True)["restartCount"] == 1


async def test_sidecar_runs_alongside_and_stops_after_main(
    backend: ProcessBackend, tmp_path: Any
) -> None:
    sidecar = sh("side", "touch /shared/side-started; sleep 30", restartPolicy="Always")
    main = sh("main", "test -e /shared/side-started && echo yes > /shared/seen; exit 0")
    pod = make_pod("sidecar", main, init=[sidecar])
    assert share_dir(pod, backend, tmp_path) == "/shared"
    seen = tmp_path / "seen"
    await backend.create_pod(pod)
    status = await wait_for(backend, "sidecar", phase_is("Succeeded", "Failed"), seconds=15)
    assert status["phase"] == "Succeeded"
    assert seen.read_text().strip()  # the sidecar was running while main ran
    assert "terminated" in container(status, "side", init=True)["state"]


async def test_missing_command_is_run_container_error(backend: ProcessBackend) -> None:
    pod = make_pod("nocmd", {"name": "main", "command": ["definitely-not-a-command-xyz"]})
    pod["spec"]["restartPolicy"] = "Always"
    await backend.create_pod(pod)
    status = await wait_for(
        backend,
        "nocmd",
        lambda s: (
            "waiting" in container(s, "main")["state"]
            and container(s, "main")["state"]["waiting"]["reason"] == "RunContainerError"
        ),
    )
    waiting = container(status, "main")["state"]["waiting"]
    assert "definitely-not-a-command-xyz" in waiting["message"]
    last = container(status, "main")["lastState"]["terminated"]
    assert last["reason"] == "StartError" and last["exitCode"] == 128


async def test_missing_command_under_never_fails(backend: ProcessBackend) -> None:
    await backend.create_pod(make_pod("nocmd2", {"name": "main", "command": ["/no/such/bin"]}))
    status = await wait_for(backend, "nocmd2", phase_is("Failed"))
    term = container(status, "main")["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert "/no/such/bin" in term["message"]


async def test_unmapped_image_without_command_is_image_unsupported(
    backend: ProcessBackend,
) -> None:
    await backend.create_pod(make_pod("img", {"name": "main", "image": "nginx:1.27"}))
    status = await wait_for(backend, "img", lambda s: "waiting" in container(s, "main")["state"])
    await wait_for(
        backend,
        "img",
        lambda s: container(s, "main")["state"]["waiting"].get("reason") == "ImageUnsupported",
    )
    assert status["phase"] == "Pending"


async def test_mapped_image_runs_its_default_command(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(images=ImageMap({"python": ImageEntry(entrypoint=(PYTHON,))}))
    pod = make_pod("py", {"name": "main", "image": "python:3.12", "args": ["-c", "exit(5)"]})
    await backend.create_pod(pod)
    status = await wait_for(backend, "py", phase_is("Failed"))
    assert container(status, "main")["state"]["terminated"]["exitCode"] == 5


async def test_unresolved_value_from_is_config_error(backend: ProcessBackend) -> None:
    env = [{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    await backend.create_pod(make_pod("cfg", sh("main", "exit 0", env=env)))
    status = await wait_for(backend, "cfg", lambda s: "waiting" in container(s, "main")["state"])
    await wait_for(
        backend,
        "cfg",
        lambda s: (
            container(s, "main")["state"]["waiting"].get("reason") == "CreateContainerConfigError"
        ),
    )
    assert status["phase"] == "Pending"


async def test_env_args_and_working_dir(any_backend: ProcessBackend, tmp_path: Any) -> None:
    c = {
        "name": "main",
        "command": ["sh", "-c"],
        "args": ['echo "$GREETING|$(pwd)|$0" > "$OUT"', "$(GREETING)"],
    }
    pod = make_pod("env", c)
    shared = share_dir(pod, any_backend, tmp_path)
    c = pod["spec"]["containers"][0]
    c["env"] = [{"name": "GREETING", "value": "hello world"}, {"name": "OUT", "value": "out"}]
    c["workingDir"] = shared
    await any_backend.create_pod(pod)
    status = await wait_for(any_backend, "env", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"
    assert (tmp_path / "out").read_text().strip() == f"hello world|{shared}|hello world"


async def test_active_deadline_exceeded(backend: ProcessBackend) -> None:
    pod = make_pod("deadline", sh("main", "sleep 30"), activeDeadlineSeconds=1)
    await backend.create_pod(pod)
    status = await wait_for(backend, "deadline", phase_is("Failed"), seconds=15)
    assert status["reason"] == "DeadlineExceeded"
    status = await wait_for(
        backend, "deadline", lambda s: "terminated" in container(s, "main")["state"]
    )
    assert container(status, "main")["state"]["terminated"]["exitCode"] == 143


async def test_create_is_idempotent_per_uid(backend: ProcessBackend) -> None:
    pod = make_pod("dup", sh("main", "sleep 30"))
    await backend.create_pod(pod)
    await backend.create_pod(pod)
    await wait_for(backend, "dup", phase_is("Running"))
    assert len(await backend.list_pods()) == 1
    assert len(backend._pods[("default", "dup")].instances) == 1


async def test_notifications_are_ordered(backend: ProcessBackend) -> None:
    phases: list[str] = []
    backend.notify_pods(lambda pod: phases.append(pod["status"]["phase"]))
    await backend.create_pod(make_pod("notes", sh("main", "sleep 0.2; exit 0")))
    await wait_for(backend, "notes", phase_is("Succeeded"))
    collapsed = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert collapsed == ["Pending", "Running", "Succeeded"]
