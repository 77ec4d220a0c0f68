"""Pod builders and waiting helpers for the process backend tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from vkcompose.backends.process import ProcessBackend

_uids = itertools.count(1)


def make_pod(
    name: str,
    *containers: dict[str, Any],
    restart_policy: str = "Never",
    init: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod JSON with the given containers (``{"name", "command"}`` dicts)."""
    full_spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "containers": [{"image": "busybox", **c} for c in containers],
        **spec,
    }
    if init:
        full_spec["initContainers"] = [{"image": "busybox", **c} for c in init]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{next(_uids)}"},
        "spec": full_spec,
    }


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A container running ``sh -c script``."""
    return {"name": name, "command": ["sh", "-c", script], **extra}


async def wait_for(
    backend: ProcessBackend,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    seconds: float = 10.0,
    namespace: str = "default",
) -> dict[str, Any]:
    """Poll the pod status until ``predicate(status)``; fail after ``seconds`` (a hang guard)."""
    status: dict[str, Any] = {}
    try:
        with anyio.fail_after(seconds):
            while True:
                status = (await backend.get_pod_status(namespace, name))["status"]
                if predicate(status):
                    return status
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"condition not reached; last status: {status}") from None


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: the pod phase is one of ``phases``."""
    return lambda status: status.get("phase") in phases


def container(status: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    """One container status by name."""
    key = "initContainerStatuses" if init else "containerStatuses"
    for st in status.get(key) or []:
        if st["name"] == name:
            return dict(st)
    raise KeyError(name)


def condition(status: dict[str, Any], ctype: str) -> str:
    """``"True"``/``"False"`` of a pod condition."""
    for c in status.get("conditions") or []:
        if c["type"] == ctype:
            return str(c["status"])
    raise KeyError(ctype)


def share_dir(pod: dict[str, Any], backend: ProcessBackend, host_dir: Any) -> str:
    """Make ``host_dir`` visible to every container of ``pod``; return its path inside them.

    With namespace isolation the containers have a private ``/tmp`` (where pytest's
    ``tmp_path`` lives), so the directory is mounted at ``/shared`` as a ``hostPath`` volume;
    without isolation containers see the host paths as they are.
    """
    if backend.isolation == "none":
        return str(host_dir)
    spec = pod["spec"]
    spec.setdefault("volumes", []).append({"name": "shared", "hostPath": {"path": str(host_dir)}})
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        c.setdefault("volumeMounts", []).append({"name": "shared", "mountPath": "/shared"})
    return "/shared"


def config_dir(parent: Path) -> Path:
    """A volume directory ``parent/config`` with ``app.conf`` (``answer=42``) and
    ``nested/item`` (``deep``)."""
    config = parent / "config"
    (config / "nested").mkdir(parents=True)
    (config / "app.conf").write_text("answer=42\n")
    (config / "nested" / "item").write_text("deep\n")
    return config


def exists(path: Any) -> bool:
    """Whether ``path`` exists on the host (a sync helper for async tests)."""
    return os.path.exists(path)


def read_bytes(path: Any) -> bytes:
    """The content of a host file."""
    with open(path, "rb") as f:
        return f.read()


def listdir(path: Any) -> list[str]:
    """Sorted entries of a host directory."""
    return sorted(os.listdir(path))


async def eventually(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (``seconds`` is a hang guard)."""
    with anyio.fail_after(seconds):
        while True:
            if predicate():
                return
            await anyio.sleep(0.02)
