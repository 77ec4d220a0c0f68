"""Resource limits: a cgroup per pod and per container, or rlimits where cgroups are unusable.

:func:`detect` probes the host for real (it creates and removes a test cgroup) and returns a
:class:`CgroupDriver`:

* **cgroup v2** (``cgroup2`` mount whose root offers the ``memory`` controller): a parent
  ``vkcompose`` at the root of the hierarchy (or ``parent=``, e.g. a delegated subtree), the
  ``memory``/``cpu``/``pids`` controllers enabled in ``cgroup.subtree_control`` of the root and
  of the parent; files ``memory.max``, ``cpu.max``, ``pids.max``, ``memory.events``
  (``oom_kill``), ``memory.current``, ``cpu.stat`` (``usage_usec``);
* **cgroup v1** (hosts still on the legacy or hybrid layout): the ``memory`` hierarchy is
  required, ``cpu``, ``cpuacct`` and ``pids`` are used when mounted; the parent ``vkcompose`` is
  created under vkcompose's own cgroup in each hierarchy; files ``memory.limit_in_bytes``,
  ``memory.oom_control`` (``oom_kill``), ``memory.usage_in_bytes``, ``cpu.cfs_quota_us``,
  ``cpuacct.usage``, ``pids.max``.

Layout: ``<parent>/<pod>/<container>``. The pod cgroup gets the kubelet's pod-level limit when
every container sets one (sum of the regular containers and sidecars, at least the largest init
container); each container cgroup gets its own ``resources.limits``. The container's main
process joins its cgroup before ``exec`` (the shim writes ``0`` to ``cgroup.procs``), so every
process it starts is accounted, limited and OOM-killed there.

Without a usable cgroup, ``limits.memory`` becomes ``RLIMIT_AS`` (address space, not resident
memory: a process that maps much more than it touches fails early, and allocations fail with
``ENOMEM`` instead of an OOM kill), ``limits.cpu`` is not enforced.

>>> container_limits({"resources": {"limits": {"memory": "32Mi", "cpu": "250m"}}})
Limits(memory=33554432, cpu_millis=250, pids=None)
>>> v2_cpu_max(250)
'25000 100000'
>>> parse_counter("low 0\\nhigh 0\\nmax 3\\noom 1\\noom_kill 1\\n", "oom_kill")
1
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from vkcompose.podspec.quantity import parse_quantity

PARENT = "vkcompose"
CPU_PERIOD_US = 100_000
V1_OPTIONAL = ("cpu", "cpuacct", "pids")


@attrs.frozen
class Limits:
    """A container's (or pod's) limits: memory bytes, CPU millicores, process count."""

    memory: int | None = None
    cpu_millis: int | None = None
    pids: int | None = None

    @property
    def empty(self) -> bool:
        """No limit at all."""
        return self.memory is None and self.cpu_millis is None and self.pids is None


def container_limits(container: Mapping[str, Any], pids: int | None = None) -> Limits:
    """``resources.limits`` of a container (unparsable quantities are ignored)."""
    limits = (container.get("resources") or {}).get("limits") or {}
    memory = cpu = None
    with contextlib.suppress(ValueError, TypeError, ZeroDivisionError):
        if limits.get("memory") is not None:
            memory = max(math.ceil(parse_quantity(str(limits["memory"]))), 1)
    with contextlib.suppress(ValueError, TypeError, ZeroDivisionError):
        if limits.get("cpu") is not None:
            cpu = max(math.ceil(parse_quantity(str(limits["cpu"])) * 1000), 1)
    return Limits(memory, cpu, pids)


def pod_limits(spec: Mapping[str, Any], pids: int | None = None) -> Limits:
    """The kubelet's pod-level limits: set for a resource only when every container sets it.

    >>> pod_limits({"containers": [{"resources": {"limits": {"memory": "1Ki"}}},
    ...                            {"resources": {"limits": {"memory": "2Ki"}}}]})
    Limits(memory=3072, cpu_millis=None, pids=None)
    >>> pod_limits({"containers": [{"resources": {"limits": {"memory": "1Ki"}}}, {}]}).memory
    """
    inits = spec.get("initContainers") or []
    sidecars = [c for c in inits if c.get("restartPolicy") == "Always"]
    steady = [*sidecars, *(spec.get("containers") or [])]
    plain_inits = [c for c in inits if c.get("restartPolicy") != "Always"]
    every = [container_limits(c) for c in [*steady, *plain_inits]]
    result: dict[str, int | None] = {}
    for field in ("memory", "cpu_millis"):
        values = [getattr(lim, field) for lim in every]
        if not values or any(v is None for v in values):
            result[field] = None
            continue
        total = sum(getattr(container_limits(c), field) for c in steady)
        biggest_init = max((getattr(container_limits(c), field) for c in plain_inits), default=0)
        result[field] = max(total, biggest_init)
    return Limits(result["memory"], result["cpu_millis"], pids)


def v2_cpu_max(millis: int | None) -> str:
    """``cpu.max`` for a limit in millicores (``max`` when unlimited)."""
    if millis is None:
        return f"max {CPU_PERIOD_US}"
    return f"{max(millis * CPU_PERIOD_US // 1000, 1000)} {CPU_PERIOD_US}"


def parse_counter(text: str, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file (``memory.events``, ``cpu.stat`` …)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            with contextlib.suppress(ValueError):
                return int(parts[1])
    return 0


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read_counter(path: str, key: str) -> int:
    """:func:`parse_counter` of a file (0 when it cannot be read)."""
    try:
        return parse_counter(_read(path), key)
    except OSError:
        return 0


@attrs.frozen
class ContainerCgroup:
    """Where one container's processes are accounted: what the shim and the stats need."""

    version: str
    dirs: tuple[str, ...]
    """One directory per hierarchy (a single one with cgroup v2)."""
    oom_file: str
    """``memory.events`` (v2) or ``memory.oom_control`` (v1); both count ``oom_kill``."""
    memory_file: str
    memory_stat: str
    cpu_file: str
    """``cpu.stat`` (v2, ``usage_usec``) or ``cpuacct.usage`` (v1, ns); empty when unknown."""

    def to_json(self) -> dict[str, Any]:
        """The shim's representation."""
        return {
            "version": self.version,
            "procs": [os.path.join(d, "cgroup.procs") for d in self.dirs],
            "oom": self.oom_file,
        }

    def usage(self) -> tuple[int, int, int] | None:
        """``(cpu_ns, memory_usage, working_set)`` or ``None`` when unreadable."""
        try:
            memory = int(_read(self.memory_file).strip() or 0)
            stat = _read(self.memory_stat)
        except (OSError, ValueError):
            return None
        inactive_key = "inactive_file" if self.version == "v2" else "total_inactive_file"
        working_set = max(0, memory - parse_counter(stat, inactive_key))
        cpu_ns = 0
        if self.cpu_file:
            try:
                raw = _read(self.cpu_file)
                if self.version == "v2":
                    cpu_ns = parse_counter(raw, "usage_usec") * 1000
                else:
                    cpu_ns = int(raw.strip() or 0)
            except (OSError, ValueError):
                cpu_ns = 0
        return cpu_ns, memory, working_set

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup."""
        return read_counter(self.oom_file, "oom_kill")

    def pids(self) -> list[int]:
        """Processes in the cgroup (host PIDs)."""
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in _read(os.path.join(d, "cgroup.procs")).split())
        return sorted(found)


@attrs.define
class CgroupDriver:
    """Creates, limits and removes pod and container cgroups under one parent per hierarchy."""

    version: str
    parents: dict[str, str]
    """Controller → parent directory (v2: ``{"": parent}``)."""

    @property
    def description(self) -> str:
        """Human summary (logs, docs)."""
        return f"cgroup {self.version} under {', '.join(sorted(set(self.parents.values())))}"

    def _paths(self, pod: str, container: str | None) -> dict[str, str]:
        tail = pod if container is None else os.path.join(pod, container)
        return {ctl: os.path.join(parent, tail) for ctl, parent in self.parents.items()}

    def container(self, pod: str, container: str) -> ContainerCgroup:
        """The cgroup of a container (paths only; see :meth:`create`)."""
        paths = self._paths(pod, container)
        if self.version == "v2":
            d = paths[""]
            return ContainerCgroup(
                "v2",
                (d,),
                os.path.join(d, "memory.events"),
                os.path.join(d, "memory.current"),
                os.path.join(d, "memory.stat"),
                os.path.join(d, "cpu.stat"),
            )
        mem = paths["memory"]
        cpu = os.path.join(paths["cpuacct"], "cpuacct.usage") if "cpuacct" in paths else ""
        return ContainerCgroup(
            "v1",
            tuple(dict.fromkeys(paths.values())),
            os.path.join(mem, "memory.oom_control"),
            os.path.join(mem, "memory.usage_in_bytes"),
            os.path.join(mem, "memory.stat"),
            cpu,
        )

    def _apply(self, paths: Mapping[str, str], limits: Limits) -> None:
        if self.version == "v2":
            d = paths[""]
            _write(os.path.join(d, "memory.max"), str(limits.memory or "max"))
            with contextlib.suppress(FileNotFoundError):
                _write(os.path.join(d, "cpu.max"), v2_cpu_max(limits.cpu_millis))
            with contextlib.suppress(FileNotFoundError):
                _write(os.path.join(d, "pids.max"), str(limits.pids or "max"))
            with contextlib.suppress(OSError):  # kernels >= 5.19: OOM kills the whole container
                _write(os.path.join(d, "memory.oom.group"), "1")
            return
        _write(os.path.join(paths["memory"], "memory.limit_in_bytes"), str(limits.memory or -1))
        if "cpu" in paths:
            quota = -1
            if limits.cpu_millis is not None:
                quota = max(limits.cpu_millis * CPU_PERIOD_US // 1000, 1000)
            _write(os.path.join(paths["cpu"], "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(os.path.join(paths["cpu"], "cpu.cfs_quota_us"), str(quota))
        if "pids" in paths:
            _write(os.path.join(paths["pids"], "pids.max"), str(limits.pids or "max"))

    def create(
        self, pod: str, pod_limits: Limits, container: str, limits: Limits
    ) -> ContainerCgroup:
        """Create (or update) the pod's and the container's cgroups with their limits."""
        pod_paths = self._paths(pod, None)
        for d in set(pod_paths.values()):
            os.makedirs(d, exist_ok=True)
        if self.version == "v2":
            _enable_controllers(pod_paths[""])
        self._apply(pod_paths, pod_limits)
        paths = self._paths(pod, container)
        for d in set(paths.values()):
            os.makedirs(d, exist_ok=True)
        self._apply(paths, limits)
        return self.container(pod, container)

    def remove(self, pod: str) -> None:
        """Kill what is left in the pod's cgroups and remove them (deepest first)."""
        for d in set(self._paths(pod, None).values()):
            _remove_tree(d)


def _enable_controllers(directory: str) -> None:
    """Enable every controller ``directory`` offers for its children (v2)."""
    wanted = set(_read(os.path.join(directory, "cgroup.controllers")).split())
    enabled = set(_read(os.path.join(directory, "cgroup.subtree_control")).split())
    missing = sorted(wanted & {"memory", "cpu", "pids"} - enabled)
    if missing:
        control = os.path.join(directory, "cgroup.subtree_control")
        _write(control, " ".join("+" + c for c in missing))


def _kill_members(directory: str) -> None:
    kill_file = os.path.join(directory, "cgroup.kill")
    if os.path.exists(kill_file):
        with contextlib.suppress(OSError):
            _write(kill_file, "1")
            return
    with contextlib.suppress(OSError):
        for pid in _read(os.path.join(directory, "cgroup.procs")).split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def _remove_tree(root: str) -> None:
    if not os.path.isdir(root):
        return
    dirs = [dirpath for dirpath, _, _ in os.walk(root)]
    for d in sorted(dirs, key=len, reverse=True):
        for attempt in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or attempt == 49:
                    break
                _kill_members(d)
                time.sleep(0.02)


# --- detection ------------------------------------------------------------------------------


@attrs.frozen
class Hierarchy:
    """A mounted cgroup hierarchy: v2 (``controllers`` empty) or a v1 one."""

    mount: str
    controllers: frozenset[str]
    version: str


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def hierarchies(mountinfo: Iterable[str]) -> list[Hierarchy]:
    """cgroup mounts from ``/proc/self/mountinfo`` lines (bind mounts of subtrees skipped).

    >>> line = "35 25 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory"
    >>> hierarchies([line])[0].controllers
    frozenset({'memory'})
    """
    found = []
    for line in mountinfo:
        head, _, tail = line.partition(" - ")
        parts, tparts = head.split(), tail.split()
        if len(parts) < 5 or len(tparts) < 3 or parts[3] != "/":
            continue
        if tparts[0] == "cgroup2":
            found.append(Hierarchy(_unescape(parts[4]), frozenset(), "v2"))
        elif tparts[0] == "cgroup":
            opts = set(tparts[2].split(","))
            ctls = frozenset(opts & {"memory", "cpu", "cpuacct", "pids", "cpuset", "blkio"})
            if ctls:
                found.append(Hierarchy(_unescape(parts[4]), ctls, "v1"))
    return found


def own_cgroups(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as controller → path (``""`` for the v2 hierarchy).

    >>> own_cgroups("4:memory:/a/b\\n2:cpu,cpuacct:/\\n0::/x\\n")
    {'memory': '/a/b', 'cpu': '/', 'cpuacct': '/', '': '/x'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for ctl in parts[1].split(",") if parts[1] else [""]:
            out[ctl] = parts[2]
    return out


def _probe(driver: CgroupDriver) -> None:
    """Create a test cgroup with a memory limit and read it back; raise ``OSError`` if not."""
    pod = f"probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        cg = driver.create(pod, Limits(), "c", Limits(memory=64 * 1024 * 1024))
        limit_file = (
            os.path.join(cg.dirs[0], "memory.max")
            if driver.version == "v2"
            else os.path.join(os.path.dirname(cg.memory_file), "memory.limit_in_bytes")
        )
        if int(_read(limit_file).strip()) != 64 * 1024 * 1024:
            raise OSError(errno.EINVAL, "memory limit not applied")
        if not os.path.exists(cg.oom_file):
            raise OSError(errno.ENOENT, f"{cg.oom_file} missing")
    finally:
        driver.remove(pod)


def _v2_driver(mount: str, parent: str | None) -> CgroupDriver:
    root_ctls = set(_read(os.path.join(mount, "cgroup.controllers")).split())
    if "memory" not in root_ctls:
        raise OSError(errno.ENOTSUP, f"the cgroup2 hierarchy at {mount} has no memory controller")
    path = parent or os.path.join(mount, PARENT)
    # every ancestor between the mount and the parent must hand the controllers down
    chain = []
    d = os.path.dirname(path)
    while d.startswith(mount) and len(d) >= len(mount):
        chain.append(d)
        if d == mount:
            break
        d = os.path.dirname(d)
    for anc in reversed(chain):
        _enable_controllers(anc)
    os.makedirs(path, exist_ok=True)
    _enable_controllers(path)
    return CgroupDriver("v2", {"": path})


def _v1_driver(found: Sequence[Hierarchy], own: Mapping[str, str]) -> CgroupDriver:
    parents: dict[str, str] = {}
    for ctl in ("memory", *V1_OPTIONAL):
        h = next((h for h in found if h.version == "v1" and ctl in h.controllers), None)
        if h is None:
            if ctl == "memory":
                raise OSError(errno.ENOTSUP, "no cgroup v1 memory hierarchy")
            continue
        base = os.path.join(h.mount, own.get(ctl, "/").lstrip("/"))
        parent = os.path.join(base, PARENT)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError:
            if ctl == "memory":
                raise
            continue
        parents[ctl] = parent
    return CgroupDriver("v1", parents)


def detect(mode: str = "auto", parent: str | None = None) -> tuple[CgroupDriver | None, str]:
    """``(driver, why_not)``: a working cgroup driver, or ``None`` and the reason.

    ``mode``: ``"auto"`` (v2, else v1), ``"v2"``, ``"v1"`` or ``"none"``. Every candidate is
    probed by creating a test cgroup with a memory limit (and removing it).
    """
    if mode == "none":
        return None, "cgroups disabled"
    try:
        with open("/proc/self/mountinfo") as f:
            found = hierarchies(f)
        with open("/proc/self/cgroup") as f:
            own = own_cgroups(f.read())
    except OSError as e:
        return None, f"cannot read the cgroup layout: {e}"
    reasons = []
    if mode in ("auto", "v2"):
        v2 = next((h for h in found if h.version == "v2"), None)
        if v2 is None:
            reasons.append("no cgroup2 mount")
        else:
            try:
                driver = _v2_driver(v2.mount, parent)
                _probe(driver)
                return driver, ""
            except (OSError, ValueError) as e:
                reasons.append(f"cgroup v2 unusable: {e}")
    if mode in ("auto", "v1"):
        try:
            driver = _v1_driver(found, own)
            _probe(driver)
            return driver, ""
        except (OSError, ValueError) as e:
            reasons.append(f"cgroup v1 unusable: {e}")
    return None, "; ".join(reasons) or "no cgroup hierarchy"


__all__ = [
    "CgroupDriver",
    "ContainerCgroup",
    "Hierarchy",
    "Limits",
    "container_limits",
    "detect",
    "hierarchies",
    "own_cgroups",
    "parse_counter",
    "pod_limits",
    "v2_cpu_max",
]
