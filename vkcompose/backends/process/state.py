"""Per-pod state on disk, and process identity that survives vkcompose restarts.

Layout under the backend's state directory (every pod directory is ``0700``)::

    <root>/<namespace>_<name>_<uid>/
        state.json                 pod JSON + runtime record (this module)
        tmp/                       the pod's private /tmp
        volumes/<name>/            emptyDir volumes the backend provides itself
        containers/<name>/
            <n>.log  <n>.log.1 …   CRI logs of instance n (n = restartCount)
            <n>.started.json       written by the shim once the process runs
            <n>.exit.json          written by the shim when it ends
            view/<n>/{upper,work,merged}   the instance's overlay root

A process is identified by its PID *and* its start time (``/proc/<pid>/stat`` field 22), so a
recycled PID is never mistaken for a container.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import attrs

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def valid_name(value: str) -> bool:
    """Whether ``value`` is safe as a path component (DNS-ish names, uids)."""
    return bool(_NAME_OK.match(value)) and ".." not in value and len(value) <= 253


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or ``None`` if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def same_process(pid: int, start_ticks: int) -> bool:
    """``pid`` is alive and is the process that was started at ``start_ticks``."""
    return pid > 0 and process_start_ticks(pid) == start_ticks


@attrs.define
class ContainerRecord:
    """What vkcompose knows about one container across its restarts."""

    name: str
    init: bool = False
    sidecar: bool = False
    restart_count: int = 0
    state: dict[str, Any] = attrs.field(
        factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = attrs.field(factory=dict)
    ready: bool = False
    started: bool = False
    shim_pid: int = 0
    shim_start_ticks: int = 0
    target_pid: int = 0
    backoff_exp: int = 0
    done: bool = False
    """No further run will happen (completed under OnFailure/Never, or the pod stopped)."""

    def to_json(self) -> dict[str, Any]:
        """Serializable form."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        """Inverse of :meth:`to_json` (unknown keys ignored)."""
        names = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@attrs.define
class PodRecord:
    """A pod as the backend runs it: its JSON plus the runtime record of its containers."""

    pod: dict[str, Any]
    dir: str
    volume_paths: dict[str, str] = attrs.field(factory=dict)
    start_time: str = ""
    containers: dict[str, ContainerRecord] = attrs.field(factory=dict)
    conditions: list[dict[str, Any]] = attrs.field(factory=list)
    terminal: dict[str, Any] = attrs.field(factory=dict)
    """Set when the pod is over: ``{"phase", "reason", "message"}``."""
    deleting: bool = False
    warnings: list[str] = attrs.field(factory=list)

    @property
    def uid(self) -> str:
        """``metadata.uid``."""
        return str((self.pod.get("metadata") or {}).get("uid") or "")

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)``."""
        meta = self.pod.get("metadata") or {}
        return (meta.get("namespace") or "", meta.get("name") or "")

    def container_dir(self, name: str) -> str:
        """Directory of one container's logs and records."""
        return os.path.join(self.dir, "containers", name)

    def to_json(self) -> dict[str, Any]:
        """Serializable form."""
        return {
            "pod": self.pod,
            "volumePaths": self.volume_paths,
            "startTime": self.start_time,
            "containers": {k: v.to_json() for k, v in self.containers.items()},
            "conditions": self.conditions,
            "terminal": self.terminal,
            "deleting": self.deleting,
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, directory: str, data: dict[str, Any]) -> PodRecord:
        """Inverse of :meth:`to_json`."""
        return cls(
            pod=data["pod"],
            dir=directory,
            volume_paths=dict(data.get("volumePaths") or {}),
            start_time=data.get("startTime") or "",
            containers={
                k: ContainerRecord.from_json(v) for k, v in (data.get("containers") or {}).items()
            },
            conditions=list(data.get("conditions") or []),
            terminal=dict(data.get("terminal") or {}),
            deleting=bool(data.get("deleting")),
            warnings=list(data.get("warnings") or []),
        )


def pod_dir_name(namespace: str, name: str, uid: str) -> str:
    """``<namespace>_<name>_<uid>``."""
    return f"{namespace}_{name}_{uid or 'nouid'}"


def make_private_dir(path: str, mode: int = 0o700) -> None:
    """Create ``path`` (and parents) with ``mode``."""
    os.makedirs(path, mode=mode, exist_ok=True)
    os.chmod(path, mode)


def save(record: PodRecord) -> None:
    """Write ``state.json`` atomically (blocking: call from a worker thread)."""
    path = os.path.join(record.dir, "state.json")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record.to_json(), f)
    os.replace(tmp, path)


def load_all(root: str) -> Iterator[PodRecord]:
    """Every pod record under ``root`` (blocking)."""
    if not os.path.isdir(root):
        return
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry, "state.json")
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        yield PodRecord.from_json(os.path.join(root, entry), data)


def read_json(path: str) -> dict[str, Any] | None:
    """A small JSON file, or ``None`` if absent or incomplete."""
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    return None


__all__ = [
    "ContainerRecord",
    "PodRecord",
    "load_all",
    "make_private_dir",
    "pod_dir_name",
    "process_start_ticks",
    "read_json",
    "same_process",
    "save",
    "valid_name",
]
