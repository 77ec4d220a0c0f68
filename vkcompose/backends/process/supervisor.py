"""One pod's run loop: init containers in order, then the containers with restart policy,
crash-loop back-off, probes, lifecycle hooks, deadline and graceful termination.

Every container instance runs under a shim (``shim.py``) started as its own session; the
supervisor watches the shim through a pidfd, so it can equally watch a shim started by an
earlier vkcompose process (re-adoption, identified by PID + start time).
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import anyio
import anyio.abc
import attrs
import orjson

from vkcompose.backends.process import cgroups, logs, probes, sandbox, state
from vkcompose.backends.process import exec as execs
from vkcompose.backends.process.images import ImageMap
from vkcompose.backends.process.status import is_sidecar, pod_conditions, pod_phase
from vkcompose.errors import InvalidInput
from vkcompose.ops import LogOptions

log = logging.getLogger("vkcompose.backends.process")

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")
BACKOFF_REASONS = ("CrashLoopBackOff", "RunContainerError")


@attrs.define
class Settings:
    """How the process backend runs containers (shared by every pod supervisor)."""

    isolation: str = "none"
    images: ImageMap = attrs.field(factory=ImageMap)
    host_ip: str = "127.0.0.1"
    python: str = sys.executable
    backoff_base: float = 10.0
    backoff_cap: float = 300.0
    backoff_reset: float = 600.0
    probe_time_scale: float = 1.0
    log_max_bytes: int = 10 * 1024 * 1024
    log_max_files: int = 5
    rlimits: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)
    default_grace: float = 30.0
    kill_wait: float = 2.0
    start_timeout: float = 30.0
    warning: str = ""
    expand_vars: bool = True
    bwrap: str = "bwrap"
    """The bubblewrap executable (``isolation == "bwrap"``)."""
    cgroups: cgroups.CgroupDriver | None = None
    """Where containers get their resource limits; ``None``: ``RLIMIT_AS`` from the memory
    limit only."""
    pids_limit: int | None = None


def backoff_delay(exponent: int, base: float, cap: float) -> float:
    """The kubelet's crash-loop back-off: ``base`` doubling per restart, capped at ``cap``.

    >>> [backoff_delay(n, 10, 300) for n in range(7)]
    [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    """
    if exponent >= 64:
        return cap
    return float(min(base * (2**exponent), cap))


def should_restart(policy: str, exit_code: int, *, init: bool, sidecar: bool) -> bool:
    """Whether a container that ended with ``exit_code`` runs again.

    >>> should_restart("OnFailure", 0, init=False, sidecar=False)
    False
    >>> should_restart("Always", 0, init=True, sidecar=False)
    False
    >>> should_restart("Never", 1, init=True, sidecar=True)
    True
    """
    if sidecar:
        return True
    if init:
        return policy != "Never" and exit_code != 0
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


def now_iso() -> str:
    """The current UTC time in RFC 3339 (seconds), as Kubernetes timestamps are written."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_iso(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 ``...Z`` timestamp (0 if unparsable)."""
    try:
        return float(calendar.timegm(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")))
    except (ValueError, TypeError):
        return 0.0


def go_duration(seconds: float) -> str:
    """``seconds`` as Go prints a ``time.Duration`` (the kubelet's back-off messages).

    >>> [go_duration(s) for s in (0.05, 10, 80, 300, 3725.5)]
    ['50ms', '10s', '1m20s', '5m0s', '1h2m5.5s']
    """
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 6):g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{int(hours)}h" if hours else ""
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + f"{round(secs, 9):g}s"


_LOG_TAIL_READ = 256 * 1024
"""Bytes read from a log's end for a termination message (80 records fit in them, unless
lines are very long: then the message is made of the last ones that fit)."""

MIN_STOP_WINDOW = 2.0
"""Seconds between SIGTERM and SIGKILL at the least, whatever the preStop hook took (the
kubelet's ``minimumGracePeriodInSeconds``); not for a stop with grace period 0."""


class Instance:
    """A running (or just ended) shim: one instance of one container."""

    def __init__(
        self, n: int, shim_pid: int, shim_ticks: int, target_pid: int, *, running: bool
    ) -> None:
        self.n = n
        self.shim_pid = shim_pid
        self.shim_ticks = shim_ticks
        self.target_pid = target_pid
        self.running = running
        self.forced = False
        self.exited = anyio.Event()
        self.respec = anyio.Event()
        """Set when the container's spec (image) changed: kill and start it again."""
        self.started_at = anyio.current_time()

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.shim_pid, os.WNOHANG)

    async def watch(self) -> None:
        """Set :attr:`exited` once the shim has ended."""
        if self.exited.is_set():
            return
        try:
            fd = os.pidfd_open(self.shim_pid)
        except OSError:
            self._reap()
            self.exited.set()
            return
        try:
            while state.same_process(self.shim_pid, self.shim_ticks):
                with anyio.move_on_after(5.0):
                    await anyio.wait_readable(fd)
                    break
        finally:
            os.close(fd)
        self._reap()
        self.exited.set()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the shim (which forwards it to the main process)."""
        if state.same_process(self.shim_pid, self.shim_ticks):
            with contextlib.suppress(OSError):
                os.kill(self.shim_pid, sig)

    def kill_descendants(self) -> None:
        """SIGKILL every process of the container, leaving the shim to record the end."""
        if not state.same_process(self.shim_pid, self.shim_ticks):
            return
        import psutil

        try:
            kids = psutil.Process(self.shim_pid).children(recursive=True)
        except psutil.Error:
            return
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                kid.kill()

    def kill_shim(self) -> None:
        """SIGKILL the shim's whole process group (last resort)."""
        if state.same_process(self.shim_pid, self.shim_ticks):
            with contextlib.suppress(OSError):
                os.killpg(self.shim_pid, signal.SIGKILL)


class PodSupervisor:
    """Runs one pod; call :meth:`run` in a task and :meth:`stop` to end it."""

    def __init__(
        self,
        settings: Settings,
        record: state.PodRecord,
        on_change: Callable[[PodSupervisor], None],
    ) -> None:
        self.settings = settings
        self.rec = record
        self.on_change = on_change
        self.instances: dict[str, Instance] = {}
        self.stop_event = anyio.Event()
        self.stop_deadline: float | None = None
        # waits of stops in progress, each with its floor: a shorter grace period (a second
        # delete) moves their deadlines forward, never below the floor
        self._stop_waits: dict[anyio.CancelScope, float] = {}
        self.regular_done = anyio.Event()
        self.finished = anyio.Event()
        self.spec_changed = anyio.Event()
        self._tick = anyio.Event()
        self._dirty = anyio.Event()
        self._save_lock = anyio.Lock()
        self._sidecars: list[anyio.Event] = []
        self.gates: dict[str, bool] = {}
        """Readiness-gate condition types → whether they are True (from pod updates)."""
        for c in self.spec.get("initContainers") or []:
            self._ensure_record(c, init=True)
        for c in self.spec.get("containers") or []:
            self._ensure_record(c, init=False)

    # --- spec --------------------------------------------------------------------------------

    @property
    def pod(self) -> dict[str, Any]:
        """The pod JSON."""
        return self.rec.pod

    @property
    def spec(self) -> dict[str, Any]:
        """``pod.spec``."""
        spec: dict[str, Any] = self.rec.pod.get("spec") or {}
        return spec

    @property
    def policy(self) -> str:
        """``spec.restartPolicy`` (default ``Always``)."""
        return str(self.spec.get("restartPolicy") or "Always")

    @property
    def stopping(self) -> bool:
        """Whether the pod is being stopped (no more restarts)."""
        return self.stop_event.is_set()

    def grace(self) -> float:
        """``terminationGracePeriodSeconds`` (default 30)."""
        value = self.spec.get("terminationGracePeriodSeconds")
        return float(value) if value is not None else self.settings.default_grace

    def _ensure_record(self, c: Mapping[str, Any], *, init: bool) -> state.ContainerRecord:
        name = str(c.get("name") or "")
        rec = self.rec.containers.get(name)
        if rec is None:
            rec = state.ContainerRecord(name=name, init=init, sidecar=init and is_sidecar(c))
            if self.spec.get("initContainers"):
                # the kubelet's waiting reason for every container of a pod with init containers
                rec.state = {"waiting": {"reason": "PodInitializing"}}
            self.rec.containers[name] = rec
        return rec

    # --- change propagation -------------------------------------------------------------------

    def changed(self) -> None:
        """Something in the record changed: wake waiters, persist, notify."""
        self._tick.set()
        self._tick = anyio.Event()
        self._dirty.set()
        self.on_change(self)

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._tick.wait()

    async def save(self) -> None:
        """Persist the record now."""
        async with self._save_lock:
            data = orjson.dumps(self.rec.to_json())
            await anyio.to_thread.run_sync(_write_atomic, self.rec.dir, data)

    async def _persister(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            await self.save()

    # --- status -------------------------------------------------------------------------------

    def _container_status(self, c: Mapping[str, Any]) -> dict[str, Any]:
        rec = self.rec.containers[str(c.get("name") or "")]
        image = str(c.get("image") or "")
        st: dict[str, Any] = {
            "name": rec.name,
            "state": rec.state,
            "lastState": rec.last_state,
            "ready": rec.ready,
            "restartCount": rec.restart_count,
            "image": image,
            "imageID": "",
            "started": rec.started,
        }
        if "waiting" not in rec.state or rec.last_state:
            st["containerID"] = f"process://{self.rec.uid}/{rec.name}/{rec.restart_count}"
        return st

    def status(self) -> dict[str, Any]:
        """The pod's ``status`` as the kubelet would report it."""
        init = [self._container_status(c) for c in self.spec.get("initContainers") or []]
        regular = [self._container_status(c) for c in self.spec.get("containers") or []]
        terminal = self.rec.terminal
        phase = terminal.get("phase") or pod_phase(self.spec, init, regular)
        conditions = pod_conditions(
            self.spec,
            phase,
            init,
            regular,
            now=now_iso(),
            previous=self.rec.conditions,
            gates=self.gates,
        )
        self.rec.conditions = conditions
        ip = self.settings.host_ip
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": ip,
            "hostIPs": [{"ip": ip}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": self.rec.start_time,
            "containerStatuses": regular,
            "qosClass": qos_class(self.spec),
        }
        if init:
            status["initContainerStatuses"] = init
        if terminal.get("reason"):
            status["reason"] = terminal["reason"]
        if terminal.get("message"):
            status["message"] = terminal["message"]
        elif self.rec.warnings:
            status["message"] = "; ".join(self.rec.warnings)
        return status

    # --- the run loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the pod to its end (or until cancelled: then its processes keep running)."""
        completed = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._persister)
                if not self.rec.terminal:
                    tg.start_soon(self._deadline)
                    if self.rec.deleting:
                        self.begin_stop(self.grace())
                    await self._run_pod(tg)
                completed = True
                tg.cancel_scope.cancel()
        finally:
            if completed:
                with anyio.CancelScope(shield=True):
                    await self.save()
                self.finished.set()

    async def _run_pod(self, tg: anyio.abc.TaskGroup) -> None:
        initialized = await self._run_init(tg)
        if initialized and not self.stopping:
            async with anyio.create_task_group() as ctg:
                for c in self.spec.get("containers") or []:
                    ctg.start_soon(self._container_loop, c, False)
        else:
            for c in self.spec.get("containers") or []:
                self.rec.containers[c["name"]].done = True
        self.regular_done.set()
        self.changed()
        for ev in self._sidecars:
            await ev.wait()
        if not self.rec.terminal:
            self.rec.terminal = {"phase": self._final_phase()}
        self.changed()

    def _final_phase(self) -> str:
        init = [self._container_status(c) for c in self.spec.get("initContainers") or []]
        regular = [self._container_status(c) for c in self.spec.get("containers") or []]
        phase = pod_phase(self.spec, init, regular)
        if phase in ("Succeeded", "Failed"):
            return phase
        for st in regular:
            term = st["state"].get("terminated")
            if not term or term.get("exitCode", 0) != 0:
                return "Failed"
        return "Succeeded"

    async def _run_init(self, tg: anyio.abc.TaskGroup) -> bool:
        for c in self.spec.get("initContainers") or []:
            if self.stopping:
                return False
            rec = self.rec.containers[c["name"]]
            if rec.sidecar:
                done = anyio.Event()
                self._sidecars.append(done)
                tg.start_soon(self._sidecar_loop, c, done)
                await self._wait_until(lambda r=rec: r.started or r.done or self.stopping)  # type: ignore[misc]
                continue
            code = await self._container_loop(c, True)
            if code != 0:
                return False
        return True

    async def _sidecar_loop(self, c: Mapping[str, Any], done: anyio.Event) -> None:
        try:
            await self._container_loop(c, True)
        finally:
            done.set()

    async def _container_loop(self, c: Mapping[str, Any], init: bool) -> int | None:
        """Run one container until no restart is due; return its last exit code."""
        name = str(c["name"])
        rec = self.rec.containers[name]
        while True:
            c = self._current_spec(name, c)
            if rec.done:
                term = rec.state.get("terminated") or {}
                return int(term["exitCode"]) if "exitCode" in term else None
            if self.stopping or (rec.sidecar and self.regular_done.is_set()):
                rec.done = True
                rec.ready = False
                self.changed()
                return None
            inst = self._adopt(rec)
            if inst is None:
                if (rec.state.get("waiting") or {}).get("reason") in BACKOFF_REASONS:
                    rec.restart_count += 1
                inst = await self._start(c, rec)
                if inst is None:  # configuration error: wait for a new spec or the end
                    changed = self.spec_changed
                    async with anyio.create_task_group() as wtg:

                        async def wake(ev: anyio.Event, scope: anyio.CancelScope) -> None:
                            await ev.wait()
                            scope.cancel()

                        wtg.start_soon(wake, changed, wtg.cancel_scope)
                        wtg.start_soon(wake, self.stop_event, wtg.cancel_scope)
                    continue
            term = await self._supervise(c, rec, inst)
            ran = anyio.current_time() - inst.started_at
            rec.ready = False
            rec.started = False
            rec.shim_pid = rec.shim_start_ticks = rec.target_pid = 0
            self.instances.pop(name, None)
            code = int(term.get("exitCode", 0))
            if inst.respec.is_set() and not self.stopping:
                # the kubelet restarts a container whose spec changed, whatever the policy
                self._restart_now(rec, term)
                continue
            restart = not self.stopping and should_restart(
                self.policy, code, init=init, sidecar=rec.sidecar
            )
            if rec.sidecar and self.regular_done.is_set():
                restart = False
            if not restart:
                rec.state = {"terminated": term}
                rec.done = True
                self.changed()
                return code
            if ran >= self.settings.backoff_reset:
                rec.backoff_exp = 0
            if rec.backoff_exp == 0:
                # the kubelet restarts a container at once the first time; the back-off
                # applies from the next exit on
                rec.backoff_exp = 1
                self._restart_now(rec, term)
                continue
            rec.last_state = {"terminated": term}
            delay = backoff_delay(
                rec.backoff_exp - 1, self.settings.backoff_base, self.settings.backoff_cap
            )
            rec.backoff_exp += 1
            if term.get("reason") == "StartError":
                waiting = {"reason": "RunContainerError", "message": term.get("message", "")}
            else:
                ns, pod_name = self.rec.key
                waiting = {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {go_duration(delay)} restarting failed "
                    f"container={name} pod={pod_name}_{ns}({self.rec.uid})",
                }
            rec.state = {"waiting": waiting}
            self.changed()
            with anyio.move_on_after(delay):
                await self.stop_event.wait()

    def _restart_now(self, rec: state.ContainerRecord, term: dict[str, Any]) -> None:
        """Record the run that ended and start the next one without a back-off."""
        rec.last_state = {"terminated": term}
        rec.restart_count += 1
        rec.state = {"waiting": {"reason": "ContainerCreating"}}
        self.changed()

    def _adopt(self, rec: state.ContainerRecord) -> Instance | None:
        """The live (or ended-while-away) instance of ``rec``, if any."""
        inst = self.instances.get(rec.name)
        if inst is not None:
            return inst
        if (rec.state.get("waiting") or {}).get("reason") in BACKOFF_REASONS:
            return None
        cdir = self.rec.container_dir(rec.name)
        n = rec.restart_count
        started = state.read_json(os.path.join(cdir, f"{n}.started.json"))
        pid, ticks = rec.shim_pid, rec.shim_start_ticks
        if not pid and started:
            pid, ticks = int(started.get("shimPid") or 0), int(started.get("shimStartTicks") or 0)
        if not pid:
            return None
        target = rec.target_pid or int((started or {}).get("pid") or 0)
        alive = state.same_process(pid, ticks)
        inst = Instance(n, pid, ticks, target, running=alive)
        if not alive:
            inst.exited.set()
        else:
            rec.shim_pid, rec.shim_start_ticks, rec.target_pid = pid, ticks, target
            if "running" not in rec.state:
                rec.state = {"running": {"startedAt": (started or {}).get("startedAt", "")}}
        self.instances[rec.name] = inst
        return inst

    # --- starting -------------------------------------------------------------------------------

    def _own_volume(self, name: str, volume: Mapping[str, Any]) -> str | None:
        if "emptyDir" in volume:
            path = os.path.join(self.rec.dir, "volumes", name)
            os.makedirs(path, mode=0o777, exist_ok=True)
            os.chmod(path, 0o777)
            return path
        host = volume.get("hostPath")
        if host and host.get("path"):
            path = str(host["path"])
            if host.get("type") == "DirectoryOrCreate":
                os.makedirs(path, exist_ok=True)
            return path
        return None

    def cgroup(self, container: str) -> cgroups.ContainerCgroup | None:
        """The container's cgroup (when the backend uses cgroups)."""
        driver = self.settings.cgroups
        if driver is None:
            return None
        return driver.container(os.path.basename(self.rec.dir), container)

    async def _cgroup(
        self, container: str, limits: cgroups.Limits
    ) -> cgroups.ContainerCgroup | None:
        driver = self.settings.cgroups
        if driver is None:
            return None
        pod_limits = cgroups.pod_limits(self.spec, self.settings.pids_limit)
        pod = os.path.basename(self.rec.dir)
        try:
            return await anyio.to_thread.run_sync(driver.create, pod, pod_limits, container, limits)
        except OSError as e:
            log.warning("cgroup of %s/%s: %s; using rlimits", self.rec.key[1], container, e)
            return None

    def _config_error(self, rec: state.ContainerRecord, reason: str, message: str) -> None:
        rec.state = {"waiting": {"reason": reason, "message": message}}
        self.changed()

    async def _start(self, c: Mapping[str, Any], rec: state.ContainerRecord) -> Instance | None:
        s = self.settings
        argv = s.images.command(c)
        if argv is None:
            self._config_error(
                rec,
                "ImageUnsupported",
                f"image {c.get('image')!r} has no host command mapping and the container sets "
                "no command",
            )
            return None
        try:
            env = sandbox.container_env(self.pod, c, expand_vars=s.expand_vars)
            if s.expand_vars:
                argv = [sandbox.expand(a, env) for a in argv]
            mounts = sandbox.container_mounts(
                self.pod, c, self.rec.volume_paths, env, self._own_volume
            )
        except InvalidInput as e:
            self._config_error(rec, e.reason, e.message)
            return None
        uid, gid = sandbox.run_as(self.pod, c)
        if os.geteuid() != 0:
            uid = gid = None
        elif uid is not None and gid is None:
            gid = uid
        n = rec.restart_count
        cdir = self.rec.container_dir(rec.name)
        view = os.path.join(cdir, "view", str(n))
        limits = cgroups.container_limits(c, s.pids_limit)
        rlimits = {k: list(v) for k, v in s.rlimits.items()}
        cgroup = await self._cgroup(rec.name, limits)
        if cgroup is None and limits.memory is not None:
            rlimits["AS"] = [limits.memory, limits.memory]
        spec: dict[str, Any] = {
            "argv": argv,
            "env": env,
            "cwd": c.get("workingDir") or ("/" if s.isolation != "none" else None),
            "uid": uid,
            "gid": gid,
            "groups": sandbox.supplemental_groups(self.pod) if gid is not None else [],
            "isolation": s.isolation,
            "bwrap": s.bwrap,
            "hostname": self.rec.key[1],
            "view": {
                "merged": os.path.join(view, "merged"),
                "upper": os.path.join(view, "upper"),
                "work": os.path.join(view, "work"),
                "tmp": os.path.join(self.rec.dir, "tmp"),
            },
            "mounts": [m.to_json() for m in mounts],
            "log": {
                "path": os.path.join(cdir, f"{n}.log"),
                "maxBytes": s.log_max_bytes,
                "maxFiles": s.log_max_files,
            },
            "startedPath": os.path.join(cdir, f"{n}.started.json"),
            "exitPath": os.path.join(cdir, f"{n}.exit.json"),
            "stdin": bool(c.get("stdin")),
            "tty": bool(c.get("tty")),
            "stdinFifo": os.path.join(cdir, "stdin"),
            "controlFifo": os.path.join(cdir, "control"),
            "rlimits": rlimits,
        }
        if cgroup is not None:
            spec["cgroup"] = cgroup.to_json()
        if spec["cwd"] is None:
            spec["cwd"] = os.path.join(self.rec.dir, "tmp")
        spec_path = await anyio.to_thread.run_sync(_prepare_instance, self.rec.dir, cdir, n, spec)
        pid, notify_r = _spawn_shim(s.python, spec_path, os.path.join(cdir, "shim.err"))
        ticks = state.process_start_ticks(pid) or 0
        rec.shim_pid, rec.shim_start_ticks = pid, ticks
        try:
            with anyio.move_on_after(s.start_timeout):
                await anyio.wait_readable(notify_r)
            try:
                outcome = os.read(notify_r, 1)
            except BlockingIOError:
                outcome = b""
        finally:
            os.close(notify_r)
        started = state.read_json(spec["startedPath"]) if outcome == b"S" else None
        target = int((started or {}).get("pid") or 0)
        inst = Instance(n, pid, ticks, target, running=started is not None)
        self.instances[rec.name] = inst
        if started is not None:
            rec.target_pid = target
            rec.state = {"running": {"startedAt": started.get("startedAt") or now_iso()}}
            self.changed()
        return inst

    # --- while running ----------------------------------------------------------------------------

    async def _supervise(
        self, c: Mapping[str, Any], rec: state.ContainerRecord, inst: Instance
    ) -> dict[str, Any]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(inst.watch)
            if inst.running and not inst.exited.is_set():
                tg.start_soon(self._stop_watch, c, inst)
                tg.start_soon(self._respec_watch, c, inst)
                tg.start_soon(self._lifecycle, c, rec, inst)
            await inst.exited.wait()
            tg.cancel_scope.cancel()
        term = await anyio.to_thread.run_sync(self._read_exit, rec, inst)
        if (
            c.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            and term.get("exitCode")
            and not term.get("message")
        ):
            tail = await anyio.to_thread.run_sync(self._log_tail, rec, inst)
            if tail:
                term["message"] = tail
        return term

    def _log_tail(self, rec: state.ContainerRecord, inst: Instance) -> str:
        """The end of the instance's log, as the kubelet reports it for a container that failed
        under ``FallbackToLogsOnError``: its last 80 lines, at most their last 2,048 bytes."""
        path = os.path.join(self.rec.container_dir(rec.name), f"{inst.n}.log")
        data = b""
        cut = False
        # from the newest file back, only as much as 80 lines can take (not whole files)
        for file in reversed(logs.log_files(path, self.settings.log_max_files)):
            with contextlib.suppress(OSError), open(file, "rb") as f:
                start = max(0, f.seek(0, os.SEEK_END) - (_LOG_TAIL_READ - len(data)))
                f.seek(start)
                data = f.read() + data
                cut = start > 0
            if len(data) >= _LOG_TAIL_READ:
                break
        if cut and b"\n" in data:
            data = data[data.index(b"\n") + 1 :]  # the first record read was cut
        records = logs.select(logs.parse_lines(data), LogOptions(tail_lines=80), time.time_ns())
        text = b"".join(logs.render_all(records, timestamps=False))
        return text[-2048:].decode("utf-8", "replace")

    def _read_exit(self, rec: state.ContainerRecord, inst: Instance) -> dict[str, Any]:
        path = os.path.join(self.rec.container_dir(rec.name), f"{inst.n}.exit.json")
        data = state.read_json(path)
        started_at = (rec.state.get("running") or {}).get("startedAt") or now_iso()
        if data is None:
            if inst.forced:
                data = {"exitCode": 137, "signal": 9, "reason": "Error"}
            else:
                data = {
                    "exitCode": 137,
                    "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when the pod was terminated",
                }
            data.setdefault("startedAt", started_at)
            data.setdefault("finishedAt", now_iso())
        if not data.get("signal"):
            data.pop("signal", None)
        data["containerID"] = f"process://{self.rec.uid}/{rec.name}/{inst.n}"
        return data

    async def _stop_watch(self, c: Mapping[str, Any], inst: Instance) -> None:
        rec = self.rec.containers[str(c["name"])]
        if rec.sidecar:
            async with anyio.create_task_group() as tg:

                async def wake(ev: anyio.Event) -> None:
                    await ev.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(wake, self.stop_event)
                tg.start_soon(wake, self.regular_done)
            if not self.regular_done.is_set():
                with anyio.move_on_after(self._remaining(default=self.grace())):
                    await self.regular_done.wait()
        else:
            await self.stop_event.wait()
        await self.terminate(c, inst, self._remaining(default=self.grace()))

    async def _respec_watch(self, c: Mapping[str, Any], inst: Instance) -> None:
        await inst.respec.wait()
        log.info(
            "container %s of pod %s definition changed, will be restarted",
            c.get("name"),
            self.rec.key[1],
        )
        await self.terminate(c, inst, self.grace())

    def _current_spec(self, name: str, fallback: Mapping[str, Any]) -> Mapping[str, Any]:
        """The container ``name`` as in the latest pod spec."""
        for c in [*(self.spec.get("initContainers") or []), *(self.spec.get("containers") or [])]:
            if c.get("name") == name:
                return dict(c)
        return fallback

    def _remaining(self, default: float) -> float:
        if self.stop_deadline is None:
            return default
        return max(0.0, self.stop_deadline - anyio.current_time())

    @contextlib.contextmanager
    def _stop_wait(self, deadline: float, floor: float = 0.0) -> Iterator[None]:
        """A wait ending at ``deadline``, or sooner if the pod's stop deadline is moved
        forward while it runs (:meth:`begin_stop`), but not before ``floor``."""
        if self.stop_deadline is not None:
            deadline = min(deadline, self.stop_deadline)
        with anyio.CancelScope(deadline=max(deadline, floor)) as scope:
            self._stop_waits[scope] = floor
            try:
                yield
            finally:
                del self._stop_waits[scope]

    async def terminate(self, c: Mapping[str, Any], inst: Instance, grace: float) -> None:
        """preStop hook, SIGTERM, wait ``grace``, then SIGKILL every process of the instance.
        A shorter grace period given meanwhile (:meth:`begin_stop`) shortens the waits."""
        if inst.exited.is_set():
            return
        deadline = anyio.current_time() + grace
        pre_stop = (c.get("lifecycle") or {}).get("preStop")
        if pre_stop and inst.running:
            with self._stop_wait(deadline):
                await self._run_hook(c, inst, pre_stop, grace)
        inst.signal(signal.SIGTERM)
        floor = anyio.current_time() + MIN_STOP_WINDOW if grace > 0 else 0.0
        with self._stop_wait(deadline, floor):
            await inst.exited.wait()
        if inst.exited.is_set():
            return
        inst.forced = True
        inst.kill_descendants()
        cgroup = self.cgroup(str(c.get("name") or ""))
        if cgroup is not None:
            for pid in cgroup.pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        with anyio.move_on_after(self.settings.kill_wait):
            await inst.exited.wait()
        if not inst.exited.is_set():
            inst.kill_shim()
            with anyio.move_on_after(self.settings.kill_wait):
                await inst.exited.wait()

    async def _lifecycle(
        self, c: Mapping[str, Any], rec: state.ContainerRecord, inst: Instance
    ) -> None:
        scale = self.settings.probe_time_scale
        post_start = (c.get("lifecycle") or {}).get("postStart")
        if post_start:
            # no time limit: the kubelet waits for a postStart hook as long as it runs
            ok = await self._run_hook(c, inst, post_start, None)
            if not ok:
                log.warning("postStart hook of %s/%s failed", self.rec.key[1], rec.name)
                await self.terminate(c, inst, self.grace())
                return
        startup = probes.parse_probe(c.get("startupProbe"), scale)
        if startup is not None and not await probes.until_decided(
            startup, self._checker(c, inst, startup), since=inst.started_at
        ):
            grace = startup.termination_grace
            await self.terminate(c, inst, self.grace() if grace is None else grace)
            return
        rec.started = True
        readiness = probes.parse_probe(c.get("readinessProbe"), scale)
        liveness = probes.parse_probe(c.get("livenessProbe"), scale)
        if readiness is None:
            rec.ready = True
        self.changed()
        async with anyio.create_task_group() as tg:
            if readiness is not None:

                def on_ready(ok: bool) -> None:
                    if rec.ready != ok:
                        rec.ready = ok
                        self.changed()

                tg.start_soon(
                    partial(probes.watch, since=inst.started_at),
                    readiness,
                    self._checker(c, inst, readiness),
                    on_ready,
                )
            if liveness is not None:
                live = liveness

                def on_live(ok: bool) -> None:
                    if not ok:
                        grace = live.termination_grace
                        tg.start_soon(
                            self.terminate, c, inst, self.grace() if grace is None else grace
                        )

                tg.start_soon(
                    partial(probes.watch, since=inst.started_at),
                    liveness,
                    self._checker(c, inst, liveness),
                    on_live,
                )

    def _checker(self, c: Mapping[str, Any], inst: Instance, probe: probes.Probe) -> probes.Check:
        action = probe.action
        host = str(action.get("host") or self.settings.host_ip)
        if probe.handler == "exec":

            async def check_exec() -> bool:
                code, _ = await self.run_in_container(
                    c, inst, list(action.get("command") or []), probe.timeout
                )
                return code == 0

            return check_exec
        port = probes.resolve_port(action.get("port"), c)
        if probe.handler == "httpGet":
            headers = {h["name"]: h.get("value", "") for h in action.get("httpHeaders") or []}

            async def check_http() -> bool:
                path = str(action.get("path") or "/")
                return await probes.http_check(
                    host, port, path, action.get("scheme", "HTTP"), headers
                )

            return check_http

        async def check_tcp() -> bool:  # tcpSocket; grpc is approximated by a TCP connect
            return await probes.tcp_check(host, port)

        return check_tcp

    async def _run_hook(
        self, c: Mapping[str, Any], inst: Instance, hook: Mapping[str, Any], seconds: float | None
    ) -> bool:
        try:
            if hook.get("exec") is not None:
                code, _ = await self.run_in_container(
                    c, inst, list(hook["exec"].get("command") or []), seconds
                )
                return code == 0
            if hook.get("httpGet") is not None:
                action = hook["httpGet"]
                port = probes.resolve_port(action.get("port"), c)
                host = str(action.get("host") or self.settings.host_ip)
                with anyio.fail_after(seconds):
                    return await probes.http_check(
                        host, port, str(action.get("path") or "/"), action.get("scheme", "HTTP")
                    )
            if hook.get("sleep") is not None:
                await anyio.sleep(float(hook["sleep"].get("seconds") or 0))
                return True
        except (TimeoutError, ValueError, OSError):
            return False
        return True

    def exec_context(
        self, c: Mapping[str, Any], inst: Instance, command: list[str], *, tty: bool = False
    ) -> tuple[list[str], dict[str, str], str | None]:
        """argv, env and cwd that run ``command`` in the container of ``inst``."""
        env = sandbox.container_env(self.pod, c, expand_vars=self.settings.expand_vars)
        uid, gid = sandbox.run_as(self.pod, c)
        if os.geteuid() != 0:
            uid = gid = None
        elif uid is not None and gid is None:
            gid = uid
        argv = execs.exec_argv(
            self.settings.isolation,
            inst.target_pid,
            command,
            uid=uid,
            gid=gid,
            tty=tty,
            workdir=str(c.get("workingDir") or "/"),
        )
        cwd = None
        if self.settings.isolation == "none":
            cwd = c.get("workingDir") or os.path.join(self.rec.dir, "tmp")
        return argv, env, cwd

    async def run_in_container(
        self, c: Mapping[str, Any], inst: Instance, command: list[str], seconds: float | None
    ) -> tuple[int, bytes]:
        """Run ``command`` in the container, capturing output (probes and hooks)."""
        if not command:
            return 1, b""
        argv, env, cwd = self.exec_context(c, inst, command)
        try:
            limit = None if seconds is None else max(seconds, 0.001)
            return await execs.run_captured(argv, env, cwd, limit)
        except OSError as e:
            return 126, str(e).encode()

    # --- deadline and stop ----------------------------------------------------------------------

    async def _deadline(self) -> None:
        while True:
            changed = self.spec_changed
            seconds = self.spec.get("activeDeadlineSeconds")
            if seconds is None:
                await changed.wait()
                continue
            elapsed = time.time() - parse_iso(self.rec.start_time)
            remaining = float(seconds) - elapsed
            if remaining <= 0:
                break
            with anyio.move_on_after(remaining):
                await changed.wait()
        self.rec.terminal = {
            "phase": "Failed",
            "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
        }
        self.begin_stop(self.grace())
        self.changed()

    def begin_stop(self, grace: float) -> None:
        """Stop restarting and terminate every container within ``grace`` seconds."""
        deadline = anyio.current_time() + max(grace, 0.0)
        if self.stop_deadline is None or deadline < self.stop_deadline:
            self.stop_deadline = deadline
            for scope, floor in self._stop_waits.items():
                scope.deadline = max(min(scope.deadline, deadline), floor)
        self.stop_event.set()
        self._tick.set()

    async def stop(self, grace: float | None) -> None:
        """Terminate the pod and wait until every process is gone."""
        self.rec.deleting = True
        self.begin_stop(self.grace() if grace is None else float(grace))
        self.changed()
        await self.finished.wait()

    def update(self, pod: dict[str, Any], volume_paths: Mapping[str, str] | None) -> None:
        """Take a new pod spec (mutable fields: ``activeDeadlineSeconds``, images …)."""
        gate_types = {
            g.get("conditionType") for g in pod.get("spec", {}).get("readinessGates") or []
        }
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") in gate_types:
                self.gates[cond["type"]] = cond.get("status") == "True"
        pod = {k: v for k, v in pod.items() if k != "status"}
        before = _images(self.spec)
        self.rec.pod = pod
        after = _images(self.spec)
        for name, image in after.items():
            inst = self.instances.get(name)
            if (
                name in before
                and before[name] != image
                and inst is not None
                and inst.running
                and not inst.exited.is_set()
            ):
                inst.respec.set()
        if volume_paths is not None:
            self.rec.volume_paths = dict(volume_paths)
        ev, self.spec_changed = self.spec_changed, anyio.Event()
        ev.set()
        self.changed()


def _images(spec: Mapping[str, Any]) -> dict[str, str]:
    """Container name → image (init and regular containers)."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return {str(c.get("name")): str(c.get("image") or "") for c in containers}


def qos_class(spec: Mapping[str, Any]) -> str:
    """The pod's QoS class from its containers' requests and limits.

    >>> qos_class({"containers": [{"resources": {}}]})
    'BestEffort'
    >>> qos_class({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
    'Guaranteed'
    """
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in limits or requests.get(r, limits[r]) != limits[r]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _write_atomic(directory: str, data: bytes) -> None:
    path = os.path.join(directory, "state.json")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _prepare_instance(pod_dir: str, cdir: str, n: int, spec: dict[str, Any]) -> str:
    """Create the directories of instance ``n`` and drop those older than ``n - 1``."""
    os.makedirs(cdir, mode=0o700, exist_ok=True)
    tmp = os.path.join(pod_dir, "tmp")
    if not os.path.isdir(tmp):
        os.makedirs(tmp, exist_ok=True)
        os.chmod(tmp, 0o1777)
    if spec["isolation"] == "namespaces":
        for key in ("merged", "upper", "work"):
            os.makedirs(spec["view"][key], exist_ok=True)
    for entry in os.listdir(cdir):
        head = entry.split(".", 1)[0]
        if head.isdigit() and int(head) < n - 1:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(cdir, entry))
    views = os.path.join(cdir, "view")
    if os.path.isdir(views):
        for entry in os.listdir(views):
            if entry.isdigit() and int(entry) < n:
                shutil.rmtree(os.path.join(views, entry), ignore_errors=True)
    spec_path = os.path.join(cdir, f"{n}.spec.json")
    fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(spec))
    return spec_path


def _spawn_shim(python: str, spec_path: str, err_path: str) -> tuple[int, int]:
    """Start the shim as a new session; return its PID and the read end of its notify pipe."""
    r, w = os.pipe()
    if w == 3:
        w2 = os.dup(w)
        os.close(w)
        w = w2
    os.set_blocking(r, False)
    try:
        pid = os.posix_spawn(
            python,
            [python, "-I", "-S", SHIM, spec_path, "3"],
            {"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                (os.POSIX_SPAWN_DUP2, w, 3),
            ],
            setsid=True,
        )
    except OSError:
        os.close(r)
        raise
    finally:
        os.close(w)
    return pid, r


__all__ = [
    "Instance",
    "PodSupervisor",
    "Settings",
    "backoff_delay",
    "now_iso",
    "qos_class",
    "should_restart",
]
