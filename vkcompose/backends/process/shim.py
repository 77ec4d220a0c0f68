"""Container shim: runs one instance of one container and outlives vkcompose.

The process backend starts ``python -I -S shim.py SPEC_PATH NOTIFY_FD`` per container instance
(as a new session). The shim, which uses the standard library only so that it starts in a few
milliseconds:

* sets up the container's view (``isolation == "namespaces"``): private mount, UTS and PID
  namespaces, an overlay of the host root (writes go to the container's own upper layer), the
  host's other mounts bound in, a private ``/tmp`` per pod, the volumes at their mount paths,
  a fresh ``/proc``, hostname = pod name, then ``chroot``;
* runs an init process (PID 1 of the pod's PID namespace) which forwards signals to the main
  process, reaps zombies and, once the main process exits, kills whatever it left behind;
* starts the main process (exec form: ``argv`` as given, env exactly as given, working
  directory, uid/gid, rlimits);
* writes the container's stdout/stderr to a log file in the kubelet's CRI format, rotating by
  size; relays an input FIFO to the container's stdin (attach) and applies TTY resizes;
* records ``started.json`` and, at the end, ``exit.json`` (exit code, signal, times) so a new
  vkcompose process can report what happened while it was away.

Without isolation (``isolation == "none"``) the shim becomes a child subreaper instead of a PID
namespace and kills the descendants the main process leaves behind.

The CRI log writer lives here too (:class:`CriLogWriter`, :func:`format_timestamp`) so that the
shim needs no import from the rest of the package.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import json
import os
import resource
import selectors
import signal
import sys
import time
from typing import Any

STREAMS = ("stdout", "stderr")
MAX_LINE = 16 * 1024
"""Longer lines are split into partial (``P``) records, as containerd does."""

FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def format_timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds in UTC, as in CRI logs: ``2024-01-02T03:04:05.000000001Z``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def rotated_paths(path: str, max_files: int) -> list[str]:
    """The rotated files of ``path``, oldest first (``path.N`` … ``path.1``)."""
    return [f"{path}.{i}" for i in range(max_files - 1, 0, -1)]


class CriLogWriter:
    """Writes ``<timestamp> <stream> <F|P> <content>`` records, rotating at ``max_bytes``.

    Rotation keeps ``max_files`` files in all: ``path`` (current), ``path.1`` (previous) …
    """

    def __init__(self, path: str, max_bytes: int = 10 * 1024 * 1024, max_files: int = 5) -> None:
        self.path = path
        self.max_bytes = max(max_bytes, 1)
        self.max_files = max(max_files, 1)
        self._pending: dict[str, bytearray] = {s: bytearray() for s in STREAMS}
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files > 1:
            names = [*rotated_paths(self.path, self.max_files), self.path]
            for older, newer in itertools.pairwise(names):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(newer, older)
        else:
            os.unlink(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = 0

    def _record(self, stream: str, tag: str, content: bytes) -> None:
        head = f"{format_timestamp(time.time_ns())} {stream} {tag} ".encode()
        line = head + content + b"\n"
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        os.write(self._fd, line)
        self._size += len(line)

    def write(self, stream: str, data: bytes) -> None:
        """Append output of ``stream``: complete lines become ``F`` records."""
        buf = self._pending[stream]
        buf += data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            while len(line) > MAX_LINE:
                self._record(stream, "P", line[:MAX_LINE])
                line = line[MAX_LINE:]
            self._record(stream, "F", line)
        while len(buf) >= MAX_LINE:
            self._record(stream, "P", bytes(buf[:MAX_LINE]))
            del buf[:MAX_LINE]

    def flush(self) -> None:
        """Write out unterminated output as final records."""
        for stream, buf in self._pending.items():
            if buf:
                self._record(stream, "F", bytes(buf))
                buf.clear()

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        os.close(self._fd)


# --- namespaces and mounts (ctypes over libc: Python 3.11 has no os.unshare) -------------------

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414

_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    ret = _c().mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    _check(ret, f"mount {target}")


def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def host_child_mounts() -> list[str]:
    """Mount points mounted directly on the root mount (``/proc``, ``/dev``, ``/sys`` …)."""
    rows = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            rows.append((parts[0], parts[1], _unescape(parts[4])))
    root_ids = [mid for mid, _, mp in rows if mp == "/"]
    if not root_ids:
        return []
    root = root_ids[-1]
    seen: list[str] = []
    for _mid, parent, mp in rows:
        if parent == root and mp != "/" and mp not in seen:
            seen.append(mp)
    return seen


def resolve_in_root(root: str, path: str) -> str:
    """Host path of ``path`` as seen from inside ``root``, following symlinks inside ``root``.

    Absolute symlinks are resolved against ``root`` (not the host), and ``..`` never climbs
    above ``root`` — so a container path can never name a host directory outside the view.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, f"too many symlinks in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _ensure_target(root: str, path: str, is_dir: bool, allowed_devs: set[int]) -> str:
    """Create the mount point ``path`` inside the view without writing to a host directory."""
    target = resolve_in_root(root, path)
    if os.path.lexists(target):
        return target
    ancestor = os.path.dirname(target)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if os.stat(ancestor).st_dev not in allowed_devs:
        raise OSError(
            errno.EPERM,
            f"mountPath {path} does not exist and lies under a host mount; "
            "refusing to create it on the host",
        )
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    return target


def setup_view(spec: dict[str, Any]) -> str:
    """Build the container's root (in the current, fresh mount namespace); return its path."""
    view = spec["view"]
    merged, upper, work = view["merged"], view["upper"], view["work"]
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    _mount("overlay", merged, "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work},xino=off")
    skip = {"/proc", "/tmp"}
    for mp in host_child_mounts():
        if mp in skip or mp.startswith(merged):
            continue
        dest = merged + mp
        if os.path.isdir(dest) or os.path.isfile(dest):
            with contextlib.suppress(OSError):
                _mount(mp, dest, None, MS_BIND | MS_REC, None)
    root_dev = os.stat(merged).st_dev
    tmp = resolve_in_root(merged, "/tmp")
    os.makedirs(tmp, exist_ok=True)
    _mount(view["tmp"], tmp, None, MS_BIND, None)
    allowed = {root_dev, os.stat(tmp).st_dev}
    for m in spec.get("mounts", []):
        is_dir = os.path.isdir(m["source"])
        target = _ensure_target(merged, m["target"], is_dir, allowed)
        _mount(m["source"], target, None, MS_BIND | MS_REC, None)
        if m.get("readOnly"):
            _mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    return str(merged)


# --- bubblewrap ---------------------------------------------------------------------------------

BWRAP_SKIP = ("/proc", "/dev", "/tmp")


def _bwrap_entries(directory: str, skip: tuple[str, ...] = ()) -> list[str]:
    """``--ro-bind``/``--symlink`` arguments that show ``directory``'s entries read-only."""
    args: list[str] = []
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if path in skip:
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path) or os.path.isfile(path):
            args += ["--ro-bind", path, path]
    return args


def bwrap_argv(spec: dict[str, Any], info_fd: int) -> list[str]:
    """The ``bwrap`` command line that builds the container's view and runs its argv.

    The sandbox root is a tmpfs showing the host's top-level entries read-only (the host is
    never written), a fresh ``/dev`` and ``/proc``, the pod's private ``/tmp`` and the volumes
    at their mount paths. A mount path missing on the host is created in a tmpfs that shadows
    its nearest existing ancestor (whose entries are bound back read-only).
    """
    view = spec["view"]
    argv = [spec.get("bwrap") or "bwrap", "--unshare-pid", "--unshare-uts", "--unshare-ipc"]
    if os.geteuid() != 0:
        argv.append("--unshare-user")
    argv += ["--hostname", spec.get("hostname") or "localhost", "--info-fd", str(info_fd)]
    argv += _bwrap_entries("/", BWRAP_SKIP)
    argv += ["--dev", "/dev", "--proc", "/proc", "--bind", view["tmp"], "/tmp"]
    shadowed: set[str] = set()
    binds: list[str] = []
    for m in spec.get("mounts", []):
        target = resolve_in_root("/", m["target"])
        if target != "/tmp" and not target.startswith("/tmp/") and not os.path.lexists(target):
            ancestor = os.path.dirname(target)
            while not os.path.exists(ancestor):
                ancestor = os.path.dirname(ancestor)
            if ancestor != "/" and ancestor not in shadowed:
                shadowed.add(ancestor)
                argv += ["--tmpfs", ancestor, *_bwrap_entries(ancestor)]
        binds += ["--ro-bind" if m.get("readOnly") else "--bind", m["source"], target]
    argv += binds
    argv += ["--chdir", spec.get("cwd") or "/", "--"]
    if spec.get("uid") is not None or spec.get("gid") is not None:
        argv += ["setpriv"]
        if spec.get("uid") is not None:
            argv += ["--reuid", str(spec["uid"])]
        if spec.get("gid") is not None:
            argv += ["--regid", str(spec["gid"])]
            groups = [str(g) for g in spec.get("groups") or []]
            argv += ["--groups", ",".join(groups)] if groups else ["--clear-groups"]
        argv.append("--")
    return [*argv, *spec["argv"]]


# --- the main process -------------------------------------------------------------------------


def _exec_main(
    spec: dict[str, Any],
    stdio: tuple[int, int, int],
    errw: int,
    tty: bool,
    cgroup_fds: list[int] | None = None,
    keep: tuple[int, ...] = (),
) -> None:
    """In the forked child: join the cgroup, wire stdio, drop privileges, exec. Never returns."""
    try:
        for fd in cgroup_fds or []:
            try:  # "0" = the writing process; its descendants follow it
                os.write(fd, b"0")
            except OSError as e:
                msg = f"failed to join the container's cgroup: {e.strerror}"
                raise OSError(e.errno, msg) from e
        if tty:
            os.setsid()
            import fcntl

            fcntl.ioctl(stdio[0], TIOCSCTTY, 0)
        for i, fd in enumerate(stdio):
            os.dup2(fd, i)
        low = 3
        for fd in sorted({errw, *keep}):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 65536)
        for fd in keep:
            os.set_inheritable(fd, True)
        for name, (soft, hard) in (spec.get("rlimits") or {}).items():
            with contextlib.suppress(ValueError, OSError, AttributeError):
                resource.setrlimit(getattr(resource, "RLIMIT_" + name), (soft, hard))
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        cwd = spec.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as e:
            raise OSError(e.errno, f'chdir to cwd ("{cwd}") set in config.json failed') from e
        if spec.get("gid") is not None:
            os.setgroups([int(g) for g in spec.get("groups") or []])
            os.setgid(int(spec["gid"]))
        if spec.get("uid") is not None:
            os.setuid(int(spec["uid"]))
        argv = spec["argv"]
        try:
            os.execvpe(argv[0], argv, spec["env"])
        except FileNotFoundError as e:
            if "/" in argv[0]:
                raise OSError(e.errno, f'exec: "{argv[0]}": no such file or directory') from e
            raise OSError(e.errno, f'exec: "{argv[0]}": executable file not found in $PATH') from e
        except PermissionError as e:
            raise OSError(e.errno, f'exec: "{argv[0]}": permission denied') from e
    except BaseException as e:  # report any failure to the shim, then die
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        with contextlib.suppress(OSError):
            os.write(errw, msg.encode(errors="replace") or b"start failed")
        os._exit(127)


def _init_loop(main: int, status_w: int) -> None:
    """PID 1 of the pod's PID namespace: forward signals, reap, report the main status."""

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(main, sig)

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    status = 0
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        if pid == main:
            status = st
            break
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGKILL)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    os.write(status_w, f"{status}\n".encode())
    os._exit(0)


def _descendants_of(pid: int) -> list[int]:
    """Children of ``pid`` (from /proc; after reparenting to a subreaper that is all of them)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _reap(target: int) -> int | None:
    """Reap every exited child; return ``target``'s wait status if it was among them."""
    found = None
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found if found is not None else (0 if target > 0 else None)
        if pid == 0:
            return found
        if pid == target:
            found = st


def _kill_orphans() -> None:
    """Kill (and reap) what the main process left behind; they were reparented to us."""
    for _ in range(50):
        kids = _descendants_of(os.getpid())
        if not kids:
            return
        for kid in kids:
            with contextlib.suppress(OSError):
                os.kill(kid, signal.SIGKILL)
        for kid in kids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(kid, 0)


def _first_child(pid: int, seconds: float) -> int:
    """The first child of ``pid`` (waiting up to ``seconds`` for it), 0 if none appeared."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = _descendants_of(pid) if os.path.exists(f"/proc/{pid}") else []
        if kids:
            return min(kids)
        if time.monotonic() > deadline or not os.path.exists(f"/proc/{pid}"):
            return 0
        time.sleep(0.002)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _oom_kills(cgroup: dict[str, Any]) -> int:
    """``oom_kill`` of the cgroup's ``memory.events`` (v2) / ``memory.oom_control`` (v1)."""
    if not cgroup.get("oom"):
        return 0
    try:
        with open(cgroup["oom"]) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == "oom_kill":
                    return int(parts[1])
    except (OSError, ValueError):
        pass
    return 0


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run(spec: dict[str, Any], notify_fd: int) -> int:
    """Run the container instance described by ``spec``; return the shim's exit code."""
    log = CriLogWriter(spec["log"]["path"], spec["log"]["maxBytes"], spec["log"]["maxFiles"])
    tty = bool(spec.get("tty"))
    isolated = spec.get("isolation") == "namespaces"
    bwrap = spec.get("isolation") == "bwrap"
    pending: list[int] = []

    def on_signal(sig: int, _frame: object) -> None:
        pending.append(sig)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    # stdio of the main process
    outputs: dict[int, str] = {}
    if tty:
        master, slave = os.openpty()
        child_stdio = (slave, slave, slave)
        outputs[master] = "stdout"
        input_fd = master
        to_close = [slave]
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if spec.get("stdin"):
            in_r, in_w = os.pipe()
            input_fd = in_w
        else:
            in_r = os.open(os.devnull, os.O_RDONLY)
            input_fd = -1
        child_stdio = (in_r, out_w, err_w)
        outputs[out_r] = "stdout"
        outputs[err_r] = "stderr"
        to_close = [in_r, out_w, err_w]
    fifo_fd = ctl_fd = -1
    if spec.get("stdin") and spec.get("stdinFifo"):
        with contextlib.suppress(FileExistsError):
            os.mkfifo(spec["stdinFifo"], 0o600)
        fifo_fd = os.open(spec["stdinFifo"], os.O_RDWR | os.O_NONBLOCK)
    if tty and spec.get("controlFifo"):
        with contextlib.suppress(FileExistsError):
            os.mkfifo(spec["controlFifo"], 0o600)
        ctl_fd = os.open(spec["controlFifo"], os.O_RDWR | os.O_NONBLOCK)

    errr, errw = os.pipe()
    status_r, status_w = os.pipe()
    started_at = _now()
    start_error = ""
    target = -1
    cgroup = spec.get("cgroup") or {}
    cgroup_fds: list[int] = []
    oom_before = _oom_kills(cgroup)
    try:
        for path in cgroup.get("procs") or []:
            cgroup_fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except OSError as e:
        start_error = f"failed to open the container's cgroup: {e.strerror or e}"
    merged = ""
    try:
        if start_error:
            pass
        elif isolated:
            _check(_c().unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID), "unshare")
            merged = setup_view(spec)
            name = spec.get("hostname", "").encode()
            if name:
                _check(_c().sethostname(name, len(name)), "sethostname")
        else:
            _c().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError as e:
        start_error = f"failed to set up the container's view: {e.strerror or e}"
    if not start_error:
        if isolated:
            target = os.fork()
            if target == 0:
                try:
                    os.close(status_r)
                    _mount("proc", merged + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
                    os.chroot(merged)
                    try:  # exec sessions (nsenter --wd) start in the init's directory
                        os.chdir(spec.get("cwd") or "/")
                    except OSError:
                        os.chdir("/")
                    main = os.fork()
                    if main == 0:
                        _exec_main(spec, child_stdio, errw, tty, cgroup_fds)
                    os.close(errw)
                    signal.set_wakeup_fd(-1)
                    for fd in (*to_close, *outputs, wake_r, wake_w):
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    _init_loop(main, status_w)
                except BaseException as e:
                    with contextlib.suppress(OSError):
                        os.write(errw, f"container init failed: {e}".encode())
                os._exit(127)
        elif bwrap:
            info_r, info_w = os.pipe()
            outer = {**spec, "cwd": "/", "uid": None, "gid": None, "groups": []}
            outer["argv"] = bwrap_argv(spec, info_w)
            target = os.fork()
            if target == 0:
                _exec_main(outer, child_stdio, errw, tty, cgroup_fds, keep=(info_w,))
            os.close(info_w)
        else:
            target = os.fork()
            if target == 0:
                _exec_main(spec, child_stdio, errw, tty, cgroup_fds)
    for fd in cgroup_fds:
        os.close(fd)
    os.close(errw)
    os.close(status_w)
    for fd in to_close:
        os.close(fd)
    if target > 0:
        chunks = []
        while True:
            try:
                chunk = os.read(errr, 4096)
            except InterruptedError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
        start_error = b"".join(chunks).decode(errors="replace")
    os.close(errr)
    sandbox_pid = main_pid = 0
    if bwrap and target > 0:
        info = _read_all(info_r)
        os.close(info_r)
        try:
            sandbox_pid = int(json.loads(info)["child-pid"]) if info else 0
        except (ValueError, KeyError, TypeError):
            sandbox_pid = 0
        if not start_error and not sandbox_pid:
            start_error = "failed to set up the container's view (bwrap); see the container log"
        # bwrap reports its PID 1 before it has finished the view: the command it forks is
        # what exec sessions enter (its root and working directory are the container's)
        main_pid = _first_child(sandbox_pid, 5.0) if sandbox_pid else 0
    started_at = _now()
    if not start_error:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        _write_json(
            spec["startedPath"],
            {
                "pid": main_pid or sandbox_pid or target,
                "startedAt": started_at,
                "shimPid": os.getpid(),
                "shimStartTicks": ticks,
            },
        )
    if notify_fd >= 0:
        with contextlib.suppress(OSError):
            os.write(notify_fd, b"S" if not start_error else b"E")
            os.close(notify_fd)

    sel = selectors.DefaultSelector()
    for fd in outputs:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    if fifo_fd >= 0 and input_fd >= 0:
        sel.register(fifo_fd, selectors.EVENT_READ)
    if ctl_fd >= 0:
        sel.register(ctl_fd, selectors.EVENT_READ)
    wait_status: int | None = None
    exited_at = 0.0
    ctl_buf = b""
    while True:
        if target > 0 and wait_status is None:
            st = _reap(target)
            if st is not None:
                wait_status = st
                exited_at = time.monotonic()
                if isolated:
                    report = os.read(status_r, 64).strip()
                    if report:
                        wait_status = int(report)
                else:
                    _kill_orphans()
        if target <= 0 and wait_status is None:
            wait_status = 127 << 8
            exited_at = time.monotonic()
        if not isolated and wait_status is not None:
            _reap(-2)
        open_outputs = [fd for fd in outputs if fd in sel.get_map()]
        if wait_status is not None and (not open_outputs or time.monotonic() - exited_at > 1.0):
            break
        timeout = None if wait_status is None else 0.1
        for key, _ in sel.select(timeout):
            fd = int(key.fd)
            if fd == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
            elif fd in outputs:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO from a pty whose slave closed
                    data = b""
                if data:
                    log.write(outputs[fd], data)
                else:
                    sel.unregister(fd)
            elif fd == fifo_fd:
                with contextlib.suppress(BlockingIOError):
                    data = os.read(fifo_fd, 65536)
                    if data and input_fd >= 0:
                        with contextlib.suppress(OSError):
                            os.write(input_fd, data)
            elif fd == ctl_fd:
                with contextlib.suppress(BlockingIOError):
                    ctl_buf += os.read(ctl_fd, 4096)
                while b"\n" in ctl_buf:
                    line, ctl_buf = ctl_buf.split(b"\n", 1)
                    _apply_control(line, input_fd, target)
        while pending:
            forward = pending.pop(0)
            if target > 0 and wait_status is None:
                # bwrap does not forward signals: send them to what its PID 1 runs
                for pid in _descendants_of(sandbox_pid) if sandbox_pid else [target]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, forward)
    log.close()
    if start_error:
        record: dict[str, Any] = {
            "exitCode": 128,
            "signal": 0,
            "reason": "StartError",
            "message": start_error,
            "startedAt": started_at,
            "finishedAt": _now(),
        }
    else:
        st = wait_status or 0
        if os.WIFSIGNALED(st):
            signum = os.WTERMSIG(st)
            code, reason = 128 + signum, "Error"
        else:
            signum, code = 0, os.WEXITSTATUS(st)
            reason = "Completed" if code == 0 else "Error"
            if bwrap and code > 128:  # bwrap exits 128 + signal for a signalled command
                signum = code - 128
        if cgroup and _oom_kills(cgroup) > oom_before:
            reason = "OOMKilled"
        record = {
            "exitCode": code,
            "signal": signum,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": _now(),
        }
    _write_json(spec["exitPath"], record)
    if spec.get("cleanup"):
        for path in spec["cleanup"]:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return 0


def _apply_control(line: bytes, master: int, target: int) -> None:
    """``resize W H`` on the control FIFO: set the pty size and tell the process (SIGWINCH)."""
    parts = line.split()
    if len(parts) == 3 and parts[0] == b"resize" and master >= 0:
        import fcntl
        import struct

        with contextlib.suppress(ValueError, OSError):
            rows, cols = int(parts[2]), int(parts[1])
            fcntl.ioctl(master, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            if target > 0:
                os.kill(target, signal.SIGWINCH)


def main(argv: list[str]) -> int:
    """Entry point: ``shim.py SPEC_PATH [NOTIFY_FD]``."""
    spec_path = argv[1]
    notify_fd = int(argv[2]) if len(argv) > 2 else -1
    with open(spec_path) as f:
        spec = json.load(f)
    with contextlib.suppress(OSError):
        os.unlink(spec_path)
    return run(spec, notify_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
