"""The volumes middleware: materialize a pod's volumes on the host before the backend runs it.

Layout (kubelet-style)::

    <root>/<namespace>_<name>_<uid>/            0700, owned by the pod's user when root
        volumes/<volume>/                        one directory per volume

configMap, secret, downwardAPI and projected volumes are written with the atomic writer
(``..data`` symlink swap); emptyDir is a plain directory (0777, as the kubelet makes it);
hostPath passes the host path through after the kubelet's ``type`` checks. The backend
receives ``op.volume_paths`` (volume name → host directory) and mounts each at its
``mountPath``.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
import attrs

from vkcompose.errors import InvalidInput, NotFound, TemporaryError, Unsupported
from vkcompose.middlewares.events import EventSink
from vkcompose.middlewares.volumes.plan import (
    ATOMIC_KINDS,
    DEFAULT_TOKEN_EXPIRATION,
    FileSpec,
    Ownership,
    SourceSnapshot,
    VolumeMountError,
    plan_volume,
    volume_kind,
    volume_ownership,
)
from vkcompose.middlewares.volumes.tokens import TokenCache, TokenSource
from vkcompose.middlewares.volumes.writer import DATA_DIR, set_ownership, write_volume
from vkcompose.ops import CreatePod, DeletePod, NodeInfo, Op, UpdatePod
from vkcompose.pipeline import Handler
from vkcompose.podspec import JSON, Pod

log = logging.getLogger(__name__)


class SourceReader(Protocol):
    """Reads ConfigMaps and Secrets (full API objects); sync or async methods both fit."""

    def get_configmap(self, namespace: str, name: str, /) -> JSON | Awaitable[JSON | None] | None:
        """The ConfigMap, or ``None`` when it does not exist."""
        ...

    def get_secret(self, namespace: str, name: str, /) -> JSON | Awaitable[JSON | None] | None:
        """The Secret, or ``None`` when it does not exist."""
        ...


class SecretSink(Protocol):
    """Learns secret values to hide (``vkcompose.middlewares.redaction.SecretRegistry`` fits)."""

    def add(self, value: str | bytes, /) -> None:
        """Register one secret value."""


HOST_PATH_TYPES = (
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
)


def _component(what: str, value: str) -> str:
    if not value or "/" in value or "\x00" in value or value in (".", "..") or len(value) > 255:
        raise InvalidInput(f"invalid {what} for a host directory: {value!r}")
    return value


def pod_dir_name(pod: Pod) -> str:
    """``<namespace>_<name>_<uid>``: the pod's directory name under the volumes root."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    name = _component("pod name", meta.get("name") or "")
    uid = meta.get("uid") or ""
    return _component("pod directory", f"{namespace}_{name}_{uid}")


def _check_host_path(volume: str, path: str, kind: str) -> None:
    if not path.startswith("/"):
        raise InvalidInput(f'volume "{volume}": hostPath.path must be absolute')
    try:
        info: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        info = None
    if kind == "DirectoryOrCreate" and info is None:
        os.makedirs(path, mode=0o755, exist_ok=True)
        return
    if kind == "FileOrCreate" and info is None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        os.close(fd)
        return
    checks = {
        "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
        "Directory": (stat.S_ISDIR, "a directory"),
        "FileOrCreate": (stat.S_ISREG, "a file"),
        "File": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if kind in checks:
        check, noun = checks[kind]
        if info is None:
            raise VolumeMountError(volume, f"hostPath type check failed: {path} does not exist")
        if not check(info.st_mode):
            raise VolumeMountError(volume, f"hostPath type check failed: {path} is not {noun}")


@attrs.frozen(slots=True)
class _Task:
    name: str
    kind: str
    target: Path
    payload: Mapping[str, FileSpec] | None = None
    host_path: str = ""
    host_path_type: str = ""
    error: VolumeMountError | None = None


class Volumes:
    """Middleware materializing pod volumes under ``root`` and passing their host paths on.

    * ``CreatePod`` / ``UpdatePod``: plan and write every volume, then call the backend with
      ``volume_paths``. A missing mandatory source raises :class:`VolumeMountError`
      (``FailedMount``, temporary: the caller retries, the pod stays ``ContainerCreating``)
      and records a Warning event; on update a volume already on disk keeps its content.
    * ``DeletePod``: after the backend stopped the pod, remove the pod directory.
    * :meth:`refresh` / :meth:`run`: re-sync configMap/secret/downwardAPI/projected content
      when sources change and renew projected tokens at 80 % of their lifetime.

    ``chown`` (default: running as root) gives files to the pod's runAsUser/fsGroup;
    ``secrets`` (a redaction ``SecretRegistry``) learns every Secret file's content and token.
    """

    def __init__(
        self,
        root: Path | str,
        sources: SourceReader,
        tokens: TokenSource | None = None,
        events: EventSink | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        chown: bool | None = None,
        allow_host_path: bool = True,
        secrets: SecretSink | None = None,
    ) -> None:
        self.root = Path(root)
        self.sources = sources
        self.tokens = TokenCache(tokens, clock=clock) if tokens is not None else None
        self.events = events
        self.chown = (os.geteuid() == 0) if chown is None else chown
        self.allow_host_path = allow_host_path
        self.secrets = secrets
        self._locks: dict[str, anyio.Lock] = {}
        self._pods: dict[str, tuple[Pod, NodeInfo | None]] = {}

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        match op:
            case CreatePod() | UpdatePod():
                paths = await self.materialize(
                    op.pod, op.node, keep_on_error=isinstance(op, UpdatePod)
                )
                op = attrs.evolve(op, volume_paths={**op.volume_paths, **paths})
                return await call_next(op)
            case DeletePod():
                try:
                    result = await call_next(op)
                except NotFound:
                    await self.remove(op.pod)
                    raise
                await self.remove(op.pod)
                return result
        return await call_next(op)

    def pod_dir(self, pod: Pod) -> Path:
        """The host directory of ``pod``."""
        return self.root / pod_dir_name(pod)

    async def materialize(
        self, pod: Pod, node: NodeInfo | None = None, *, keep_on_error: bool = False
    ) -> dict[str, str]:
        """Write all volumes of ``pod``; return volume name → host directory.

        With ``keep_on_error``, a volume that cannot be planned but was written before keeps
        its content (a Warning event says why), as the kubelet does on re-sync.
        """
        pod_dir = self.pod_dir(pod)
        lock = self._locks.setdefault(pod_dir.name, anyio.Lock())
        async with lock:
            try:
                tasks = await self._plan(pod, pod_dir, node, keep_on_error)
                owner = volume_ownership(pod) if self.chown else Ownership()
                failures = await anyio.to_thread.run_sync(self._write, pod_dir, tasks, owner)
            except VolumeMountError as error:
                self._event(pod, "Warning", error.reason, error.message)
                raise
            self._pods[pod_dir.name] = (pod, node)
        for failure in failures:
            self._event(pod, "Warning", failure.reason, failure.message)
        return {task.name: task.host_path or str(task.target) for task in tasks}

    async def refresh(self, pod: Pod | None = None) -> None:
        """Re-plan and atomically update the volumes of ``pod`` (default: every known pod)."""
        if pod is not None:
            node = self._pods.get(pod_dir_name(pod), (pod, None))[1]
            await self.materialize(pod, node, keep_on_error=True)
            return
        for known, node in list(self._pods.values()):
            try:
                await self.materialize(known, node, keep_on_error=True)
            except Exception as exc:  # one pod's failure must not stop the re-sync of others
                log.warning("volume re-sync of pod %s failed: %s", pod_dir_name(known), exc)

    async def run(
        self,
        interval: float = 60.0,
        *,
        min_delay: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Re-sync forever: every ``interval`` seconds, or sooner when a token needs renewal.

        Never sooner than ``min_delay`` after the previous pass, so a token that cannot be
        renewed (API down) does not turn the loop into a busy retry.
        """
        now = clock or (self.tokens.clock if self.tokens else time.monotonic)
        while True:
            delay = interval
            if self.tokens is not None:
                due = self.tokens.next_refresh()
                if due is not None:
                    delay = max(min(min_delay, interval), min(interval, due - now()))
            await sleep(delay)
            await self.refresh()

    async def remove(self, pod: Pod) -> None:
        """Delete the pod's directory and forget its tokens."""
        pod_dir = self.pod_dir(pod)
        lock = self._locks.setdefault(pod_dir.name, anyio.Lock())
        async with lock:
            await anyio.to_thread.run_sync(_rmtree, pod_dir)
            self._pods.pop(pod_dir.name, None)
            if self.tokens is not None:
                self.tokens.forget((pod.get("metadata") or {}).get("uid") or "")
        self._locks.pop(pod_dir.name, None)

    async def _plan(
        self, pod: Pod, pod_dir: Path, node: NodeInfo | None, keep_on_error: bool
    ) -> list[_Task]:
        tasks: list[_Task] = []
        fetched: dict[tuple[str, str], JSON | None] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            name = _component("volume name", str(volume.get("name") or ""))
            kind = volume_kind(volume)
            target = pod_dir / "volumes" / name
            if kind in ATOMIC_KINDS:
                try:
                    payload = await self._plan_atomic(pod, volume, node, fetched)
                except VolumeMountError as failed:
                    if not keep_on_error:
                        raise
                    tasks.append(_Task(name, kind, target, error=failed))
                    continue
                if self.secrets is not None:
                    for spec in payload.values():
                        if spec.secret:
                            self.secrets.add(spec.data)
                tasks.append(_Task(name, kind, target, payload))
            elif kind == "emptyDir":
                tasks.append(_Task(name, kind, target))
            elif kind == "hostPath":
                if not self.allow_host_path:
                    raise Unsupported(f'volume "{name}": hostPath volumes are disabled')
                source = volume.get("hostPath") or {}
                host_type = source.get("type") or ""
                if host_type not in HOST_PATH_TYPES:
                    raise InvalidInput(f'volume "{name}": unknown hostPath type {host_type!r}')
                tasks.append(
                    _Task(name, kind, target, None, str(source.get("path") or ""), host_type)
                )
            else:
                raise Unsupported(f'volume "{name}": {kind or "empty"} volumes are not supported')
        return tasks

    async def _plan_atomic(
        self,
        pod: Pod,
        volume: JSON,
        node: NodeInfo | None,
        fetched: dict[tuple[str, str], JSON | None],
    ) -> dict[str, FileSpec]:
        name = str(volume.get("name"))
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        kind = volume_kind(volume)
        src = volume.get(kind) or {}
        refs: list[tuple[str, str]] = []
        audiences: list[tuple[str, int]] = []
        if kind == "configMap":
            refs.append(("configmap", src.get("name") or ""))
        elif kind == "secret":
            refs.append(("secret", src.get("secretName") or ""))
        elif kind == "projected":
            for source in src.get("sources") or ():
                if source.get("configMap") is not None:
                    refs.append(("configmap", source["configMap"].get("name") or ""))
                elif source.get("secret") is not None:
                    refs.append(("secret", source["secret"].get("name") or ""))
                elif source.get("serviceAccountToken") is not None:
                    projection = source["serviceAccountToken"]
                    audiences.append(
                        (
                            projection.get("audience") or "",
                            int(projection.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION),
                        )
                    )
        for ref in refs:
            if ref not in fetched:
                reader = (
                    self.sources.get_configmap if ref[0] == "configmap" else self.sources.get_secret
                )
                value = reader(namespace, ref[1])
                if inspect.isawaitable(value):
                    value = await value
                fetched[ref] = value
        snapshot = SourceSnapshot(
            configmaps={n: v for (k, n), v in fetched.items() if k == "configmap"},
            secrets={n: v for (k, n), v in fetched.items() if k == "secret"},
        )
        tokens: dict[tuple[str, int], str] = {}
        if self.tokens is not None:
            for audience, expiration in audiences:
                try:
                    tokens[(audience, expiration)] = await self.tokens.get(
                        pod, audience, expiration
                    )
                except TemporaryError as exc:
                    raise VolumeMountError(name, exc.message) from None
        return plan_volume(
            pod,
            volume,
            snapshot,
            token=(lambda a, e: tokens[(a, e)]) if self.tokens is not None else None,
            allocatable=node.allocatable if node is not None else None,
        )

    def _write(self, pod_dir: Path, tasks: list[_Task], owner: Ownership) -> list[VolumeMountError]:
        failures: list[VolumeMountError] = []
        self.root.mkdir(parents=True, exist_ok=True)
        volumes = pod_dir / "volumes"
        dir_mode = 0o750 if owner.gid is not None and owner.uid is None else 0o700
        for directory in (pod_dir, volumes):
            directory.mkdir(mode=dir_mode, exist_ok=True)
            os.chmod(directory, dir_mode)
            if owner:
                os.chown(directory, -1 if owner.uid is None else owner.uid, -1)
                if owner.gid is not None:
                    os.chown(directory, -1, owner.gid)
        for task in tasks:
            if task.error is not None:
                if not os.path.lexists(task.target / DATA_DIR):
                    raise task.error
                failures.append(task.error)
            elif task.payload is not None:
                changed = write_volume(task.target, task.payload, owner=owner or None)
                if changed:
                    log.debug("wrote volume %s of %s", task.name, pod_dir.name)
            elif task.kind == "emptyDir":
                if not task.target.exists():
                    task.target.mkdir(mode=0o777)
                    os.chmod(task.target, 0o777)
                    if owner:
                        set_ownership(task.target, owner, readonly=False)
            elif task.kind == "hostPath":
                try:
                    _check_host_path(task.name, task.host_path, task.host_path_type)
                except OSError as exc:
                    raise VolumeMountError(task.name, f"hostPath: {exc.strerror}") from None
        return failures

    def _event(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        if self.events is None:
            return
        try:
            self.events.emit(pod, type=type_, reason=reason, message=message)
        except Exception as exc:  # events are best effort
            log.warning("recording event %s failed: %s", reason, type(exc).__name__)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "HOST_PATH_TYPES",
    "SecretSink",
    "SourceReader",
    "Volumes",
    "pod_dir_name",
]
