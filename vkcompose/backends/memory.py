"""A simulated backend: pods live in memory and move through a data-driven lifecycle.

Nothing runs; each pod walks the stages of :mod:`vkcompose.backends.memory_stages`
(Pending → ContainerCreating → Running → Succeeded/Failed, crash loops, slow starts, failing
creates), with delays taken from the table or the pod's ``sim.vkcompose.io/*`` annotations.
Status changes are pushed through the notifier in order; a starting state the pod leaves at
once (Pending or ContainerCreating with a zero delay, the default) is not reported, so a pod
that starts at once is announced once, Running. Such a pod passes its starting states during
``create_pod`` (it is Running when that returns) and is announced just after it returns.
Pod IPs come from ``pod_cidr``.
Logs, exec (a tiny command set) and stats are synthetic. Seeded: the same seed and pods give
the same jitter, IPs and numbers.

>>> import anyio
>>> async def main():
...     async with MemoryBackend() as backend:
...         await backend.create_pod({"metadata": {"name": "web", "namespace": "default",
...             "uid": "u1"}, "spec": {"containers": [{"name": "app"}]}})
...         await backend.settle()
...         return (await backend.get_pod_status("default", "web"))["status"]["phase"]
>>> anyio.run(main)
'Running'
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import ipaddress
import math
import random
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import anyio
import attrs
from anyio.abc import ByteStream

from vkcompose.backends.clock import AnyioClock, Clock
from vkcompose.backends.memory_stages import (
    DEFAULT_STAGES,
    TERMINAL,
    SimOverrides,
    SimState,
    Stage,
    backoff_delay,
)
from vkcompose.capabilities import PodNotifier
from vkcompose.errors import InvalidInput, NotFound, TemporaryError, Unsupported
from vkcompose.ops import ExecIO, LogOptions, NodeInfo
from vkcompose.podspec import JSON, Pod


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class _SimPod:
    pod: Pod
    overrides: SimOverrides
    seed: tuple[int, str]
    """What seeds :attr:`rng`: the backend seed and the pod's UID (the generator is made on
    first use, as most pods never draw a random number)."""
    state: SimState = SimState.PENDING
    generation: int = 0
    restarts: int = 0
    ips: list[str] = attrs.field(factory=list)
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    last_exit: tuple[int, float, float] | None = None
    _rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        """This pod's random numbers (jitter), seeded from the backend seed and its UID."""
        if self._rng is None:
            self._rng = random.Random(_seed(*self.seed))
        return self._rng

    deleted: bool = False
    unannounced: bool = False
    """Started at once in ``create_pod``; its announcement is still due."""
    rendered: Pod | None = None
    """The pod as last rendered, valid until the state changes (see ``_changed``)."""
    created_wall: str = ""
    container_ids: dict[str, str] = attrs.field(factory=dict)


_STARTING = frozenset({SimState.PENDING, SimState.CREATING})


class MemoryBackend:
    """The simulated backend (see the module docstring).

    ``stages`` replaces the lifecycle table; ``backoff_base``/``backoff_cap`` set the crash-loop
    back-off (the kubelet's 10 s → 5 min by default); ``clock`` lets tests drive time by hand.
    Use it as an async context manager, or call :meth:`run` in a task; if neither, the first
    create starts the scheduler on the running event loop.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        pod_cidr: str = "10.244.0.0/16",
        host_ip: str = "127.0.0.1",
        stages: Sequence[Stage] = DEFAULT_STAGES,
        backoff_base: float = 10.0,
        backoff_cap: float = 300.0,
        log_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.seed = seed
        self.host_ip = host_ip
        self.stages = {stage.source: stage for stage in stages}
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.log_interval = log_interval
        self.clock: Clock = clock or AnyioClock()
        self.healthy = True
        """Set to False to make :meth:`ping` fail (the node turns NotReady)."""
        self.creates = 0
        """How many pods were actually started (adoptions and repeats excluded)."""
        self._network = ipaddress.ip_network(pod_cidr)
        self._network_base = int(self._network.network_address)
        self._network_size = self._network.num_addresses
        self._address_type = type(self._network.network_address)
        self._next_host = 2
        self._free_ips: list[str] = []
        self._pods: dict[tuple[str, str], _SimPod] = {}
        self._failed_creates: dict[str, int] = {}
        self._notifiers: list[PodNotifier] = []
        self._timers: list[tuple[float, int, tuple[str, str], int]] = []
        self._seq = 0
        self._wakeup: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._announcing = 0  # pods created at once whose announcement is still due
        self._runner: asyncio.Task[None] | None = None
        self._running = False
        self._wall_origin = datetime.now(UTC)
        self._clock_origin: float | None = None
        self._wall_origin_ts = self._wall_origin.timestamp()
        self._wall_cache: tuple[int, str] = (-(2**62), "")

    # -- lifecycle of the backend itself -------------------------------------------------

    async def __aenter__(self) -> MemoryBackend:
        self._ensure_running()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the scheduler (pods stay as they are)."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def run(self) -> None:
        """Drive the lifecycle until cancelled (one scheduler for all pods, in order)."""
        if self._running:
            raise RuntimeError("MemoryBackend.run() is already running")
        self._running = True
        try:
            while True:
                now = self.clock.now()
                while self._timers and self._timers[0][0] <= now:
                    _, _, key, generation = heapq.heappop(self._timers)
                    self._fire(key, generation)
                if not self._timers and self._idle is not None:
                    self._idle.set()
                self._wakeup = anyio.Event()
                deadline = self._timers[0][0] if self._timers else None
                await self.clock.wait_until(deadline, self._wakeup)
        finally:
            self._running = False

    async def settle(self) -> None:
        """Wait until no transition is due any more (all pods reached a resting state)."""
        self._ensure_running()
        while self._announcing:
            await anyio.lowlevel.checkpoint()
        while self._timers:
            due = self._timers[0][0]
            if due > self.clock.now() and not isinstance(self.clock, AnyioClock):
                return  # a manual clock must be advanced by the caller
            self._idle = anyio.Event()
            if self._wakeup is not None:
                self._wakeup.set()
            await self._idle.wait()

    def _ensure_running(self) -> None:
        if not self._running and self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self.run())

    # -- time ------------------------------------------------------------------------------

    def _wall(self, moment: float) -> str:
        if self._clock_origin is None:
            self._clock_origin = moment
        second = math.floor(self._wall_origin_ts + (moment - self._clock_origin))
        cached = self._wall_cache
        if cached[0] != second:  # second precision: format each second once
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            cached = self._wall_cache = (second, text)
        return cached[1]

    def _schedule(self, sim: _SimPod, delay: float) -> None:
        self._ensure_running()  # the scheduler may have been stopped by aclose()
        self._seq += 1
        key = _key(sim.pod)
        heapq.heappush(self._timers, (self.clock.now() + delay, self._seq, key, sim.generation))
        if self._wakeup is not None:
            self._wakeup.set()

    def _plan_next(self, sim: _SimPod) -> float | None:
        """Schedule the transition out of the pod's current state, if any; its delay."""
        delay = self._next_delay(sim)
        if delay is not None:
            self._schedule(sim, delay)
        return delay

    def _next_delay(self, sim: _SimPod) -> float | None:
        """How long the pod stays in its current state (``None``: until something happens)."""
        stage = self.stages.get(sim.state)
        if stage is None:
            return None
        delay = sim.overrides.delay(stage.delay_key, stage.delay)
        if stage.source is SimState.RUNNING and delay is None and sim.overrides.crash_loop:
            delay = 0.0
        if stage.source is SimState.BACKOFF:
            delay = sim.overrides.delay(
                stage.delay_key, backoff_delay(sim.restarts, self.backoff_base, self.backoff_cap)
            )
        if delay is None:
            return None
        if stage.jitter:
            delay += sim.rng.uniform(0, stage.jitter)
        return delay

    def _notify_unless_instant(self, sim: _SimPod, delay: float | None) -> None:
        """Notify, except for a starting state (Pending, ContainerCreating) the pod leaves at
        once: a state that lasts no time is not reported (one status instead of three)."""
        if delay == 0.0 and sim.state in _STARTING:
            return
        self._notify(sim)

    def _fire(self, key: tuple[str, str], generation: int) -> None:
        sim = self._pods.get(key)
        if sim is None or sim.generation != generation:
            return
        self._flush_announcement(sim)
        if not self._advance(sim, self.clock.now()):
            return
        if sim.state in TERMINAL and sim.deleted:
            self._notify(sim)
            self._forget(key)
            return
        self._notify_unless_instant(sim, self._plan_next(sim))

    def _advance(self, sim: _SimPod, now: float) -> bool:
        """Move the pod to its next state (False: its state has no next one)."""
        match sim.state:
            case SimState.PENDING:
                sim.state = SimState.CREATING
            case SimState.CREATING | SimState.BACKOFF:
                if sim.state is SimState.BACKOFF:
                    sim.restarts += 1
                sim.state = SimState.RUNNING
                sim.started_at = now
                sim.exit_code = None
                sim.finished_at = None
            case SimState.RUNNING:
                self._exit(sim, now)
            case SimState.TERMINATING:
                sim.state = SimState.SUCCEEDED
                sim.exit_code = 0
                sim.finished_at = now
            case _:
                return False
        sim.generation += 1
        sim.rendered = None
        return True

    def _exit(self, sim: _SimPod, now: float) -> None:
        code = sim.overrides.exit_code
        if code is None:
            code = 1 if sim.overrides.crash_loop else 0
        sim.exit_code = code
        sim.finished_at = now
        policy = (sim.pod.get("spec") or {}).get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if restart:
            sim.last_exit = (code, sim.started_at or now, now)
            sim.state = SimState.BACKOFF
        else:
            sim.state = SimState.SUCCEEDED if code == 0 else SimState.FAILED

    # -- notifications -----------------------------------------------------------------------

    def notify_pods(self, notifier: PodNotifier, /) -> None:
        """Register a callback; it receives the pod with its fresh status on every change."""
        self._notifiers.append(notifier)

    def _notify(self, sim: _SimPod) -> None:
        if not self._notifiers:
            return
        pod = self._render(sim)
        for notifier in self._notifiers:
            notifier(pod)

    # -- pod lifecycle ---------------------------------------------------------------------------

    async def create_pod(self, pod: Pod, /) -> None:
        """Accept a pod; re-creating one that exists with the same uid is a no-op."""
        key = _key(pod)
        uid = (pod.get("metadata") or {}).get("uid") or f"{key[0]}/{key[1]}"
        existing = self._pods.get(key)
        if existing is not None and not existing.deleted:
            if _uid(existing.pod) == _uid(pod):
                return
            raise InvalidInput(f"pod {key[0]}/{key[1]} already exists with another uid")
        overrides = SimOverrides.from_pod(pod)
        if overrides.fail_create is not None:
            failures = self._failed_creates.get(uid, 0)
            if overrides.fail_create_times is None or failures < overrides.fail_create_times:
                self._failed_creates[uid] = failures + 1
                raise TemporaryError(overrides.fail_create)
        self._ensure_running()
        sim = _SimPod(
            pod=pod,
            overrides=overrides,
            seed=(self.seed, uid),
            created_at=self.clock.now(),
        )
        sim.ips = list(await self.pod_ips(pod))
        self._pods[key] = sim
        self.creates += 1
        delay = self._next_delay(sim)
        instant = delay == 0.0 and sim.state in _STARTING
        if instant:
            # starting states that last no time are passed here rather than by the scheduler;
            # the pod is announced once, after its creation has returned
            now = self.clock.now()
            while delay == 0.0 and sim.state in _STARTING and self._advance(sim, now):
                delay = self._next_delay(sim)
        if delay is not None:
            self._schedule(sim, delay)
        if instant:
            sim.unannounced = True
            self._announcing += 1
            asyncio.get_running_loop().call_soon(self._announce, sim)
        else:
            self._notify_unless_instant(sim, delay)

    def _announce(self, sim: _SimPod) -> None:
        self._announcing -= 1
        self._flush_announcement(sim)

    def _flush_announcement(self, sim: _SimPod) -> None:
        """Announce a pod started at once, if still due: before any later change of it."""
        if sim.unannounced:
            sim.unannounced = False
            self._notify(sim)

    async def update_pod(self, pod: Pod, /) -> None:
        """Record the new spec (images etc.); the simulation keeps its state."""
        sim = self._get(*_key(pod))
        sim.pod = {**pod, "status": sim.pod.get("status", {})}
        sim.rendered = None
        sim.unannounced = False  # announced now
        self._notify(sim)

    async def delete_pod(self, pod: Pod, grace_period_seconds: int | None, /) -> None:
        """Stop the pod: it terminates after its stop delay, then disappears from the backend."""
        key = _key(pod)
        sim = self._pods.get(key)
        if sim is None:
            raise NotFound(f"pod {key[0]}/{key[1]} not found")
        if sim.deleted:
            return
        self._flush_announcement(sim)
        sim.deleted = True
        sim.generation += 1
        sim.rendered = None
        if sim.state in TERMINAL:
            self._notify(sim)
            self._forget(key)
            return
        if sim.state in (SimState.PENDING, SimState.CREATING):
            sim.started_at = None
        sim.state = SimState.TERMINATING
        self._notify(sim)
        self._plan_next(sim)

    async def get_pod_status(self, namespace: str, name: str, /) -> Pod:
        """The pod with its current status."""
        return self._render(self._get(namespace, name))

    async def list_pods(self) -> list[Pod]:
        """Every pod the simulation holds (deleted ones until they finish stopping)."""
        return [self._render(sim) for sim in self._pods.values()]

    async def pod_ips(self, pod: Pod, /) -> Sequence[str]:
        """The pod's IP, allocated from ``pod_cidr`` on first ask."""
        sim = self._pods.get(_key(pod))
        if sim is not None and sim.ips:
            return sim.ips
        if (pod.get("spec") or {}).get("hostNetwork"):
            return [self.host_ip]
        if self._free_ips:
            return [self._free_ips.pop()]
        if self._next_host >= self._network_size - 1:
            raise TemporaryError(f"pod CIDR {self._network} is exhausted")
        number = self._network_base + self._next_host
        if self._network.version == 4:
            address = socket.inet_ntoa(number.to_bytes(4))  # what str(IPv4Address) gives
        else:
            address = str(self._address_type(number))
        self._next_host += 1
        return [address]

    async def ping(self) -> None:
        """Healthy unless :attr:`healthy` was set to False."""
        if not self.healthy:
            raise TemporaryError("simulated backend is unhealthy")

    def _get(self, namespace: str, name: str) -> _SimPod:
        sim = self._pods.get((namespace, name))
        if sim is None:
            raise NotFound(f"pod {namespace}/{name} not found")
        return sim

    def _forget(self, key: tuple[str, str]) -> None:
        sim = self._pods.pop(key, None)
        if sim is not None and not (sim.pod.get("spec") or {}).get("hostNetwork"):
            self._free_ips.extend(sim.ips)

    # -- status ------------------------------------------------------------------------------------

    def _render(self, sim: _SimPod) -> Pod:
        """The pod with its status; rendered once per state (callers never mutate pods)."""
        rendered = sim.rendered
        if rendered is None:
            rendered = sim.rendered = self._render_now(sim)
        return rendered

    def _render_now(self, sim: _SimPod) -> Pod:
        pod = sim.pod
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or []
        state = sim.state
        ready = state is SimState.RUNNING
        if not sim.created_wall:
            sim.created_wall = self._wall(sim.created_at)
        conditions_time = sim.created_wall
        done = state in TERMINAL
        not_ready_reason = "PodCompleted" if done else "ContainersNotReady"
        conditions: list[JSON] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": conditions_time},
            {"type": "Initialized", "status": "True", "lastTransitionTime": conditions_time},
        ]
        for kind in ("ContainersReady", "Ready"):
            condition: JSON = {
                "type": kind,
                "status": "True" if ready else "False",
                "lastTransitionTime": conditions_time,
            }
            if not ready:
                condition["reason"] = not_ready_reason
            conditions.append(condition)
        if state is SimState.TERMINATING:
            phase = "Running" if sim.started_at is not None else "Pending"
        else:
            phase = _PHASES[state]
        status: JSON = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "startTime": conditions_time,
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        }
        if state is not SimState.PENDING:
            status["containerStatuses"] = [self._container_status(sim, c) for c in containers]
        if sim.ips:
            status["podIP"] = sim.ips[0]
            status["podIPs"] = [{"ip": ip} for ip in sim.ips]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod.get("metadata", {}),
            "spec": spec,
            "status": status,
        }

    def _container_status(self, sim: _SimPod, container: Mapping[str, Any]) -> JSON:
        name = container.get("name", "")
        status: JSON = {
            "name": name,
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": self._container_id(sim, name),
            "restartCount": sim.restarts,
            "ready": sim.state is SimState.RUNNING,
            "started": sim.state in (SimState.RUNNING, SimState.TERMINATING)
            and sim.started_at is not None,
        }
        match sim.state:
            case SimState.PENDING | SimState.CREATING:
                status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            case SimState.RUNNING | SimState.TERMINATING if sim.started_at is not None:
                status["state"] = {"running": {"startedAt": self._wall(sim.started_at)}}
            case SimState.TERMINATING:
                status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            case SimState.BACKOFF:
                delay = backoff_delay(sim.restarts + 1, self.backoff_base, self.backoff_cap)
                namespace, pod_name = _key(sim.pod)
                uid = (sim.pod.get("metadata") or {}).get("uid", "")
                status["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {delay:g}s restarting failed container={name} "
                        f"pod={pod_name}_{namespace}({uid})",
                    }
                }
            case SimState.SUCCEEDED | SimState.FAILED:
                code = sim.exit_code or 0
                status["state"] = {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": self._wall(sim.started_at or sim.created_at),
                        "finishedAt": self._wall(sim.finished_at or self.clock.now()),
                    }
                }
        if sim.last_exit is not None:
            code, started, finished = sim.last_exit
            status["lastState"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": self._wall(started),
                    "finishedAt": self._wall(finished),
                }
            }
        return status

    def _container_id(self, sim: _SimPod, name: str) -> str:
        cid = sim.container_ids.get(name)
        if cid is None:
            cid = sim.container_ids[name] = (
                f"sim://{_seed(self.seed, name + str(_key(sim.pod))):016x}"
            )
        return cid

    # -- synthetic logs, exec, stats --------------------------------------------------------------

    def _container(self, namespace: str, name: str, container: str) -> tuple[_SimPod, str]:
        sim = self._get(namespace, name)
        names = [c.get("name") for c in (sim.pod.get("spec") or {}).get("containers") or []]
        if not container and len(names) == 1:
            container = str(names[0])
        if container not in names:
            raise NotFound(f"container {container} is not valid for pod {name}")
        return sim, container

    def _log_lines(self, sim: _SimPod, container: str) -> list[tuple[float, str]]:
        if sim.started_at is None:
            return []
        end = sim.finished_at if sim.finished_at is not None else self.clock.now()
        count = int((end - sim.started_at) / self.log_interval) + 1
        return [
            (sim.started_at + i * self.log_interval, f"{container}: simulated log line {i + 1}")
            for i in range(count)
        ]

    async def read_logs(
        self, namespace: str, name: str, container: str, options: LogOptions, /
    ) -> AsyncIterator[bytes]:
        """Synthetic lines, one per ``log_interval`` of running time; ``follow`` keeps going."""
        sim, container = self._container(namespace, name, container)
        if options.previous and sim.last_exit is None:
            raise InvalidInput(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        lines = self._log_lines(sim, container)
        sent = len(lines)
        if options.since_seconds is not None:
            lines = [ln for ln in lines if ln[0] >= self.clock.now() - options.since_seconds]
        if options.tail_lines is not None:
            lines = lines[-options.tail_lines :] if options.tail_lines else []
        budget = options.limit_bytes

        def render(moment: float, text: str) -> bytes:
            prefix = (
                self._wall(moment).replace("Z", ".000000000Z") + " " if options.timestamps else ""
            )
            return f"{prefix}{text}\n".encode()

        async def stream() -> AsyncIterator[bytes]:
            nonlocal budget, sent
            for moment, text in lines:
                chunk = render(moment, text)
                if budget is not None:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                if chunk:
                    yield chunk
                if budget == 0:
                    return
            while options.follow and sim.state not in TERMINAL and not sim.deleted:
                wake = anyio.Event()
                await self.clock.wait_until(self.clock.now() + self.log_interval, wake)
                for moment, text in self._log_lines(sim, container)[sent:]:
                    sent += 1
                    chunk = render(moment, text)
                    if budget is not None:
                        chunk = chunk[:budget]
                        budget -= len(chunk)
                    if chunk:
                        yield chunk
                    if budget == 0:
                        return

        return stream()

    async def exec(
        self, namespace: str, name: str, container: str, command: Sequence[str], io: ExecIO, /
    ) -> int:
        """A tiny command set: echo, cat, env, hostname, true, false, exit N, sleep S."""
        sim, container = self._container(namespace, name, container)
        if sim.state is not SimState.RUNNING:
            raise InvalidInput(f"container {container} is not running")
        if not command:
            raise InvalidInput("no command given")
        program, args = command[0], list(command[1:])
        out = io.stdout
        match program:
            case "echo":
                if out is not None:
                    await out.send((" ".join(args) + "\n").encode())
                return 0
            case "hostname":
                if out is not None:
                    await out.send((name + "\n").encode())
                return 0
            case "env":
                spec = next(c for c in sim.pod["spec"]["containers"] if c.get("name") == container)
                text = "".join(f"{e['name']}={e.get('value', '')}\n" for e in spec.get("env") or [])
                if out is not None:
                    await out.send(f"HOSTNAME={name}\n{text}".encode())
                return 0
            case "cat":
                if io.stdin is not None:
                    async for chunk in io.stdin:
                        if out is not None:
                            await out.send(chunk)
                return 0
            case "true":
                return 0
            case "false":
                return 1
            case "exit":
                return int(args[0]) if args and args[0].isdigit() else 0
            case "sleep":
                await anyio.sleep(float(args[0]) if args else 0)
                return 0
        if io.stderr is not None:
            await io.stderr.send(f"{program}: command not found\n".encode())
        return 127

    async def attach(self, namespace: str, name: str, container: str, io: ExecIO, /) -> int:
        """Relay stdin to stdout (an echoing main process) until stdin closes."""
        return await self.exec(namespace, name, container, ["cat"], io)

    async def port_forward(
        self, namespace: str, name: str, port: int, stream: ByteStream, /
    ) -> None:
        """Simulated pods listen on no port."""
        self._get(namespace, name)
        raise Unsupported("the simulated backend has no listening ports")

    async def get_stats(self, node: NodeInfo | None, /) -> JSON:
        """A kubelet Summary API document with seeded synthetic usage numbers."""
        now = _rfc3339(datetime.now(UTC))
        pods = []
        total_cpu = 0
        total_mem = 0
        for (namespace, name), sim in self._pods.items():
            if sim.state is not SimState.RUNNING:
                continue
            containers = []
            for container in (sim.pod.get("spec") or {}).get("containers") or []:
                rng = random.Random(_seed(self.seed, f"{namespace}/{name}/{container.get('name')}"))
                cpu = rng.randrange(1_000_000, 50_000_000)
                memory = rng.randrange(8 << 20, 64 << 20)
                total_cpu += cpu
                total_mem += memory
                containers.append(
                    {
                        "name": container.get("name"),
                        "startTime": self._wall(sim.started_at or sim.created_at),
                        "cpu": {
                            "time": now,
                            "usageNanoCores": cpu,
                            "usageCoreNanoSeconds": cpu * 10,
                        },
                        "memory": {
                            "time": now,
                            "workingSetBytes": memory,
                            "usageBytes": memory,
                            "rssBytes": memory,
                        },
                    }
                )
            pods.append(
                {
                    "podRef": {
                        "name": name,
                        "namespace": namespace,
                        "uid": (sim.pod.get("metadata") or {}).get("uid", ""),
                    },
                    "startTime": self._wall(sim.created_at),
                    "containers": containers,
                    "cpu": {
                        "time": now,
                        "usageNanoCores": sum(c["cpu"]["usageNanoCores"] for c in containers),
                    },
                    "memory": {
                        "time": now,
                        "workingSetBytes": sum(c["memory"]["workingSetBytes"] for c in containers),
                    },
                }
            )
        return {
            "node": {
                "nodeName": node.name if node else "",
                "startTime": _rfc3339(self._wall_origin),
                "cpu": {"time": now, "usageNanoCores": total_cpu},
                "memory": {"time": now, "workingSetBytes": total_mem, "usageBytes": total_mem},
            },
            "pods": pods,
        }


_PHASES: dict[SimState, str] = {
    SimState.PENDING: "Pending",
    SimState.CREATING: "Pending",
    SimState.RUNNING: "Running",
    SimState.BACKOFF: "Running",
    SimState.SUCCEEDED: "Succeeded",
    SimState.FAILED: "Failed",
}
"""Pod phase by simulated state (a terminating pod is Running once it started)."""


def _key(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")


def _uid(pod: Mapping[str, Any]) -> str | None:
    uid = (pod.get("metadata") or {}).get("uid")
    return None if uid is None else str(uid)


def _seed(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest())


__all__ = ["MemoryBackend"]
