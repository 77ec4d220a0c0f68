"""``ProcessBackend``: pods as real processes on this host.

>>> import tempfile
>>> backend = ProcessBackend(tempfile.mkdtemp(), isolation="none")
>>> from vkcompose import capabilities
>>> isinstance(backend, capabilities.PodLifecycle), isinstance(backend, capabilities.SupportsExec)
(True, True)

Each container instance runs under a small shim process (its own session) that keeps running
when vkcompose stops; state lives under ``state_dir`` so that a new backend on the same
directory re-adopts running pods (see :mod:`~vkcompose.backends.process.state`). Use it as an
async context manager, or just call it: supervisors start on first use. ``aclose()`` detaches
(processes keep running); ``aclose(stop_pods=True)`` terminates every pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import orjson

from vkcompose.backends.process import cgroups, logs, portforward, sandbox, state
from vkcompose.backends.process import exec as execs
from vkcompose.backends.process.images import ImageMap
from vkcompose.backends.process.stats import ContainerProcs, StatsCollector, host_memory
from vkcompose.backends.process.supervisor import Instance, PodSupervisor, Settings, now_iso
from vkcompose.capabilities import PodNotifier
from vkcompose.errors import InvalidInput, NotFound, TemporaryError
from vkcompose.ops import ExecIO, LogOptions, NodeInfo
from vkcompose.podspec import JSON, Pod

log = logging.getLogger("vkcompose.backends.process")


def _copy(pod: Pod) -> Pod:
    copied: Pod = orjson.loads(orjson.dumps(pod))
    return copied


class ProcessBackend:
    """Runs each pod's containers as local processes (see the module docs and
    ``docs/process-backend.md``).

    * ``isolation``: ``"auto"`` (namespaces when root, else bubblewrap when it works, else
      none), ``"namespaces"``, ``"bwrap"`` or ``"none"``; ``bwrap``: the bubblewrap
      executable;
    * ``images``: image → host command mapping for containers without ``command``;
    * ``backoff_base``/``backoff_cap``: crash-loop back-off (kubelet: 10 s → 5 min);
    * ``probe_time_scale``: multiplies probe durations (tests use fractions of a second);
    * ``log_max_bytes``/``log_max_files``: CRI log rotation;
    * ``rlimits``: e.g. ``{"NOFILE": (1024, 1024)}`` applied to every container;
    * ``expand_vars``: expand ``$(VAR)`` in env values, command and args as the kubelet does —
      turn it off behind ``ResolveConfigSources``, which already expanded them;
    * ``cgroups``: ``"auto"`` (cgroup v2, else v1, else rlimits), ``"v2"``, ``"v1"`` or
      ``"none"`` (rlimits only); ``cgroup_parent`` overrides the v2 parent directory (e.g. a
      delegated subtree); ``pids_limit`` sets ``pids.max`` of every container.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        host_ip: str = "127.0.0.1",
        images: ImageMap | None = None,
        isolation: str = "auto",
        backoff_base: float = 10.0,
        backoff_cap: float = 300.0,
        probe_time_scale: float = 1.0,
        log_max_bytes: int = 10 * 1024 * 1024,
        log_max_files: int = 5,
        rlimits: Mapping[str, tuple[int, int]] | None = None,
        default_grace: float = 30.0,
        kill_wait: float = 2.0,
        python: str = sys.executable,
        expand_vars: bool = True,
        cgroups: str = "auto",
        cgroup_parent: str | None = None,
        pids_limit: int | None = None,
        bwrap: str = "bwrap",
    ) -> None:
        mode, warning = sandbox.detect_isolation(isolation, bwrap)
        if warning:
            log.warning("process backend: %s", warning)
        driver, why = _detect_cgroups(cgroups, cgroup_parent)
        if driver is None and cgroups != "none":
            log.warning(
                "process backend: no usable cgroup (%s): memory limits become RLIMIT_AS "
                "(address space), CPU limits are not enforced",
                why,
            )
        self.limits_reason = why
        """Why cgroups are not used (empty when they are)."""
        self.root = os.path.abspath(os.fspath(state_dir))
        self.settings = Settings(
            isolation=mode,
            images=images or ImageMap(),
            host_ip=host_ip,
            python=python,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            backoff_reset=max(2 * backoff_cap, backoff_base),
            probe_time_scale=probe_time_scale,
            log_max_bytes=log_max_bytes,
            log_max_files=log_max_files,
            rlimits=dict(rlimits or {}),
            default_grace=default_grace,
            kill_wait=kill_wait,
            warning=warning,
            expand_vars=expand_vars,
            cgroups=driver,
            pids_limit=pids_limit,
            bwrap=shutil.which(bwrap) or bwrap,
        )
        self._pods: dict[tuple[str, str], PodSupervisor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._notifier: PodNotifier | None = None
        self._last_sent: dict[tuple[str, str], Any] = {}
        self._loaded = False
        self._load_lock: anyio.Lock | None = None
        self._stats = StatsCollector()

    @property
    def isolation(self) -> str:
        """The isolation mode in use (``"namespaces"``, ``"bwrap"`` or ``"none"``)."""
        return self.settings.isolation

    @property
    def limits(self) -> str:
        """How ``resources.limits`` are enforced: ``"cgroup v2"``, ``"cgroup v1"`` or
        ``"rlimit"`` (memory as ``RLIMIT_AS`` only)."""
        driver = self.settings.cgroups
        return f"cgroup {driver.version}" if driver is not None else "rlimit"

    # --- lifecycle of the backend itself ----------------------------------------------------------

    async def __aenter__(self) -> ProcessBackend:
        await self._ensure_loaded()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, *, stop_pods: bool = False, grace: float | None = None) -> None:
        """Stop supervising. Pods keep running unless ``stop_pods`` (then they are deleted)."""
        if stop_pods:
            async with anyio.create_task_group() as tg:
                for sup in list(self._pods.values()):
                    tg.start_soon(sup.stop, grace)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if stop_pods:
            dirs = [sup.rec.dir for sup in self._pods.values()]
            await anyio.to_thread.run_sync(_remove_dirs, dirs, self.settings.cgroups)
        self._pods.clear()
        self._loaded = False

    async def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        if self._load_lock is None:
            self._load_lock = anyio.Lock()
        async with self._load_lock:
            if self._loaded:
                return
            await anyio.to_thread.run_sync(state.make_private_dir, self.root)
            records = await anyio.to_thread.run_sync(lambda: list(state.load_all(self.root)))
            for record in records:
                if record.key in self._pods:
                    continue
                sup = PodSupervisor(self.settings, record, self._on_change)
                self._pods[record.key] = sup
                self._spawn(sup)
                sup.changed()
            self._loaded = True

    def _spawn(self, sup: PodSupervisor) -> None:
        task = asyncio.get_running_loop().create_task(self._run(sup))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, sup: PodSupervisor) -> None:
        try:
            await sup.run()
        except Exception:
            ns, name = sup.rec.key
            log.exception("supervisor of pod %s/%s failed", ns, name)

    # --- notifications ---------------------------------------------------------------------

    def notify_pods(self, notifier: PodNotifier, /) -> None:
        """Register the callback called (in order) with each pod whose status changed."""
        self._notifier = notifier

    def _with_status(self, sup: PodSupervisor) -> Pod:
        pod = {k: v for k, v in sup.pod.items() if k != "status"}
        pod["status"] = sup.status()
        return _copy(pod)

    def _on_change(self, sup: PodSupervisor) -> None:
        if self._pods.get(sup.rec.key) is not sup:
            return
        pod = self._with_status(sup)
        status = pod["status"]
        if self._last_sent.get(sup.rec.key) == status:
            return
        self._last_sent[sup.rec.key] = status
        if self._notifier is not None:
            try:
                self._notifier(pod)
            except Exception:
                log.exception("pod notifier failed")

    # --- pod lifecycle ---------------------------------------------------------------------

    @staticmethod
    def _key(pod: Pod) -> tuple[str, str, str]:
        meta = pod.get("metadata") or {}
        ns, name, uid = meta.get("namespace") or "default", meta.get("name") or "", meta.get("uid")
        uid = str(uid or "")
        for value in (ns, name):
            if not state.valid_name(value):
                raise InvalidInput(f"invalid pod name or namespace {value!r}")
        if uid and not state.valid_name(uid):
            raise InvalidInput("invalid pod uid")
        return ns, name, uid

    async def create_pod(
        self, pod: Pod, /, *, volume_paths: Mapping[str, str] | None = None
    ) -> None:
        """Start the pod (returns once accepted). A known pod with the same uid is a no-op."""
        await self._ensure_loaded()
        ns, name, uid = self._key(pod)
        existing = self._pods.get((ns, name))
        if existing is not None:
            if existing.rec.uid == uid:
                return
            if not existing.finished.is_set():
                raise TemporaryError(f"pod {ns}/{name} with another uid is still running", delay=1)
            await self._forget(existing)
        pod = _copy(pod)
        pod.setdefault("metadata", {}).setdefault("namespace", ns)
        status = pod.pop("status", None)
        directory = os.path.join(self.root, state.pod_dir_name(ns, name, uid))
        await anyio.to_thread.run_sync(state.make_private_dir, directory)
        record = state.PodRecord(
            pod=pod,
            dir=directory,
            volume_paths=dict(volume_paths or {}),
            start_time=now_iso(),
            warnings=[self.settings.warning] if self.settings.warning else [],
        )
        sup = PodSupervisor(self.settings, record, self._on_change)
        if status:
            sup.update({**pod, "status": status}, None)
        self._pods[(ns, name)] = sup
        self._spawn(sup)
        sup.changed()

    async def update_pod(
        self, pod: Pod, /, *, volume_paths: Mapping[str, str] | None = None
    ) -> None:
        """Take the new spec (``activeDeadlineSeconds`` and other mutable fields)."""
        await self._ensure_loaded()
        ns, name, _ = self._key(pod)
        sup = self._pods.get((ns, name))
        if sup is None:
            raise NotFound(f"pod {ns}/{name} not found")
        sup.update(_copy(pod), volume_paths)

    async def delete_pod(self, pod: Pod, grace_period_seconds: int | None, /) -> None:
        """Stop the pod (preStop, SIGTERM, grace period, SIGKILL) and forget it."""
        await self._ensure_loaded()
        ns, name, uid = self._key(pod)
        sup = self._pods.get((ns, name))
        if sup is None or (uid and sup.rec.uid and uid != sup.rec.uid):
            raise NotFound(f"pod {ns}/{name} not found")
        await sup.stop(grace_period_seconds)
        await self._forget(sup)

    async def _forget(self, sup: PodSupervisor) -> None:
        if self._pods.get(sup.rec.key) is sup:
            del self._pods[sup.rec.key]
            self._last_sent.pop(sup.rec.key, None)
        await anyio.to_thread.run_sync(_remove_dirs, [sup.rec.dir], self.settings.cgroups)

    def _get(self, namespace: str, name: str) -> PodSupervisor:
        sup = self._pods.get((namespace or "default", name))
        if sup is None:
            raise NotFound(f"pod {namespace}/{name} not found")
        return sup

    async def get_pod_status(self, namespace: str, name: str, /) -> Pod:
        """The pod with its current status."""
        await self._ensure_loaded()
        return self._with_status(self._get(namespace, name))

    async def list_pods(self) -> list[Pod]:
        """Every pod this backend runs (including ended, not yet deleted ones)."""
        await self._ensure_loaded()
        return [self._with_status(sup) for sup in self._pods.values()]

    async def pod_ips(self, pod: Pod, /) -> Sequence[str]:
        """Pods share the host network: their IP is the node's."""
        return [self.settings.host_ip]

    # --- containers -----------------------------------------------------------------------------

    def _container(self, sup: PodSupervisor, container: str) -> tuple[dict[str, Any], str]:
        spec = sup.spec
        all_containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        if not container:
            regular = spec.get("containers") or []
            if len(regular) != 1:
                raise InvalidInput("a container name must be specified")
            container = str(regular[0].get("name"))
        for c in all_containers:
            if c.get("name") == container:
                return c, container
        ns, name = sup.rec.key
        raise NotFound(f"container {container} is not valid for pod {ns}/{name}")

    def _running(self, sup: PodSupervisor, container: str) -> tuple[dict[str, Any], Instance]:
        c, cname = self._container(sup, container)
        inst = sup.instances.get(cname)
        if inst is None or not inst.running or inst.exited.is_set():
            raise InvalidInput(f"container {cname} is not running", reason="BadRequest")
        return c, inst

    def read_logs(
        self, namespace: str, name: str, container: str, options: LogOptions, /
    ) -> AsyncIterator[bytes]:
        """Serve a container's CRI log (see :func:`~vkcompose.backends.process.logs.read_log`)."""
        if self._loaded:
            path, finished = self._log_target(namespace, name, container, options)
            return logs.read_log(path, self.settings.log_max_files, options, finished)
        return self._read_logs_loading(namespace, name, container, options)

    async def _read_logs_loading(
        self, namespace: str, name: str, container: str, options: LogOptions
    ) -> AsyncIterator[bytes]:
        await self._ensure_loaded()
        path, finished = self._log_target(namespace, name, container, options)
        async for chunk in logs.read_log(path, self.settings.log_max_files, options, finished):
            yield chunk

    def _log_target(
        self, namespace: str, name: str, container: str, options: LogOptions
    ) -> tuple[str, Any]:
        sup = self._get(namespace, name)
        _, cname = self._container(sup, container)
        rec = sup.rec.containers[cname]
        cdir = sup.rec.container_dir(cname)
        n = rec.restart_count
        if options.previous:
            # the instance lastState names (during a back-off, the one that just ended)
            last = (rec.last_state.get("terminated") or {}).get("containerID") or ""
            tail = last.rsplit("/", 1)[-1]
            n = int(tail) if tail.isdigit() else n - 1
            if n < 0 or not os.path.exists(os.path.join(cdir, f"{n}.log")):
                raise InvalidInput(
                    f'previous terminated container "{cname}" in pod "{name}" not found',
                    reason="BadRequest",
                )
        elif not os.path.exists(os.path.join(cdir, f"{n}.log")):
            reason = (rec.state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise InvalidInput(
                f'container "{cname}" in pod "{name}" is waiting to start: {reason}',
                reason="BadRequest",
            )
        exit_path = os.path.join(cdir, f"{n}.exit.json")

        def finished() -> bool:
            inst = sup.instances.get(cname)
            return (
                os.path.exists(exit_path)
                or inst is None
                or inst.n != n
                or inst.exited.is_set()
                or sup.finished.is_set()
            )

        return os.path.join(cdir, f"{n}.log"), finished

    async def exec(
        self, namespace: str, name: str, container: str, command: Sequence[str], io: ExecIO, /
    ) -> int:
        """Run ``command`` in the container's view; return its exit code."""
        await self._ensure_loaded()
        sup = self._get(namespace, name)
        c, inst = self._running(sup, container)
        if not command:
            raise InvalidInput("a command is required", reason="BadRequest")
        argv, env, cwd = sup.exec_context(c, inst, list(command), tty=io.tty)
        try:
            if io.tty:
                return await execs.run_tty(argv, env, cwd, io)
            return await execs.run_piped(argv, env, cwd, io)
        except FileNotFoundError as e:
            if io.stderr is not None:
                with contextlib.suppress(Exception):
                    await io.stderr.send(f"exec: {e.strerror}: {command[0]}\n".encode())
            return 127

    async def attach(self, namespace: str, name: str, container: str, io: ExecIO, /) -> int:
        """Relay the main process's output (and ``stdin`` when the container has one)."""
        await self._ensure_loaded()
        sup = self._get(namespace, name)
        c, inst = self._running(sup, container)
        cdir = sup.rec.container_dir(str(c["name"]))
        if io.stdin is not None and not c.get("stdin"):
            raise InvalidInput("stdin is only supported for containers with stdin: true")
        path = os.path.join(cdir, f"{inst.n}.log")
        # where the relay starts is fixed before any input reaches the container (its reply
        # must not be written before the relay looks at the log)
        offset = await anyio.to_thread.run_sync(lambda: os.path.getsize(path))
        async with anyio.create_task_group() as tg:
            if io.stdin is not None:
                tg.start_soon(_feed_fifo, os.path.join(cdir, "stdin"), io.stdin)
            if io.resize is not None and c.get("tty"):
                tg.start_soon(_feed_resizes, os.path.join(cdir, "control"), io.resize)
            tg.start_soon(_relay_output, path, inst, io, offset)
            await inst.exited.wait()
            with anyio.move_on_after(1.0):
                await anyio.sleep(0.2)
            tg.cancel_scope.cancel()
        term = state.read_json(os.path.join(cdir, f"{inst.n}.exit.json")) or {}
        return int(term.get("exitCode", 0))

    async def port_forward(
        self, namespace: str, name: str, port: int, stream: anyio.abc.ByteStream, /
    ) -> None:
        """Relay ``stream`` to ``127.0.0.1:port`` (pods share the host network)."""
        await self._ensure_loaded()
        self._get(namespace, name)
        await portforward.relay(stream, port)

    async def get_stats(self, node: NodeInfo | None, /) -> JSON:
        """Summary API document: node + running containers' CPU and memory."""
        await self._ensure_loaded()
        items = []
        namespaces = self.settings.isolation == "namespaces"
        for sup in self._pods.values():
            ns, name = sup.rec.key
            for cname, inst in sup.instances.items():
                if not inst.running or inst.exited.is_set() or not inst.target_pid:
                    continue
                running = sup.rec.containers[cname].state.get("running") or {}
                items.append(
                    ContainerProcs(
                        namespace=ns,
                        pod=name,
                        uid=sup.rec.uid,
                        container=cname,
                        root_pid=inst.target_pid,
                        include_root=not namespaces,
                        start_time=running.get("startedAt", ""),
                        pod_start_time=sup.rec.start_time,
                        cgroup=sup.cgroup(cname),
                    )
                )
        node_name = node.name if node is not None else "vk-process"
        summary: JSON = await anyio.to_thread.run_sync(self._stats.summary, node_name, items)
        return summary

    async def ping(self) -> None:
        """Healthy when the state directory is usable."""
        ok = await anyio.to_thread.run_sync(_writable, self.root)
        if not ok:
            raise TemporaryError(f"state directory {self.root} is not writable")

    async def node_status(self, node: NodeInfo | None, /) -> JSON:
        """``MemoryPressure`` from host memory (True below 5 % available)."""
        total, available = await anyio.to_thread.run_sync(host_memory)
        pressure = total > 0 and available / total < 0.05
        return {
            "conditions": [
                {
                    "type": "MemoryPressure",
                    "status": "True" if pressure else "False",
                    "reason": "KubeletHasInsufficientMemory"
                    if pressure
                    else "KubeletHasSufficientMemory",
                    "message": "host memory available: "
                    f"{available // (1024 * 1024)} MiB of {total // (1024 * 1024)} MiB",
                }
            ]
        }


async def _feed_fifo(path: str, source: anyio.abc.ByteReceiveStream) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            async for chunk in source:
                view = memoryview(chunk)
                while view:
                    try:
                        n = os.write(fd, view)
                    except BlockingIOError:
                        await anyio.wait_writable(fd)
                        continue
                    view = view[n:]
    finally:
        os.close(fd)


async def _feed_resizes(path: str, sizes: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            async for size in sizes:
                with contextlib.suppress(OSError):
                    os.write(fd, f"resize {size.width} {size.height}\n".encode())
    finally:
        os.close(fd)


async def _relay_output(path: str, inst: Instance, io: ExecIO, offset: int) -> None:
    """Send log records of the instance from ``offset`` on to ``io.stdout``/``io.stderr``."""
    inode = os.stat(path).st_ino
    pending = b""
    while True:
        data, inode, offset = await anyio.to_thread.run_sync(logs._read_from, path, inode, offset)
        if not data:
            if inst.exited.is_set():
                return
            await anyio.sleep(0.05)
            continue
        buf = pending + data
        complete, _, pending = buf.rpartition(b"\n")
        for rec in logs.parse_lines(complete):
            sink = io.stderr if rec.stream == "stderr" and io.stderr is not None else io.stdout
            if sink is None:
                continue
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await sink.send(logs.render(rec, timestamps=False))


def _writable(root: str) -> bool:
    """Whether ``root`` is (or, when missing, can be created as) a writable directory."""
    path = os.path.abspath(root)
    while not os.path.isdir(path):
        if os.path.exists(path):
            return False  # a file where a directory must be
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.access(path, os.W_OK)


def _remove_dirs(dirs: Sequence[str], driver: cgroups.CgroupDriver | None = None) -> None:
    for d in dirs:
        if driver is not None:
            driver.remove(os.path.basename(d))
        shutil.rmtree(d, ignore_errors=True)


def _detect_cgroups(mode: str, parent: str | None) -> tuple[cgroups.CgroupDriver | None, str]:
    if mode not in ("auto", "v2", "v1", "none"):
        raise ValueError("cgroups must be one of auto, v2, v1, none")
    driver, why = cgroups.detect(mode, parent)
    if driver is None and mode in ("v1", "v2"):
        raise RuntimeError(f"cgroup {mode} unavailable: {why}")
    return driver, why


__all__ = ["ProcessBackend"]
