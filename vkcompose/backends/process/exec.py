"""Run commands inside a container's view (exec, exec probes, lifecycle hooks).

With namespace isolation a command enters the container's mount, UTS and PID namespaces and its
root and working directory through ``nsenter`` (util-linux) targeting the container's init
process; without isolation it runs on the host in the container's ``workingDir``. Either way it
gets the container's environment (passed as the process environment, never on a command line)
and its ``runAsUser``/``runAsGroup``.

>>> exec_argv("namespaces", 42, ["ls", "-l"], uid=1000, gid=None)[5:]
['--pid', '--root', '--wd', '--setuid', '1000', '--', 'ls', '-l']
>>> exec_argv("none", 42, ["ls"], uid=None, gid=None)
['ls']
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Awaitable, Mapping, Sequence

import anyio
import anyio.abc
import psutil

from vkcompose.ops import ExecIO, TerminalSize

CHUNK = 65536
DRAIN_SECONDS = 1.0
"""How long output is still relayed after the process ended (background children may hold
the pipes open)."""


async def _until_done(work: Awaitable[None], done: anyio.Event) -> None:
    try:
        await work
    finally:
        done.set()


def exec_argv(
    isolation: str,
    target_pid: int,
    command: Sequence[str],
    *,
    uid: int | None,
    gid: int | None,
    tty: bool = False,
    workdir: str = "/",
) -> list[str]:
    """The host argv that runs ``command`` in the container of ``target_pid``.

    With ``bwrap`` isolation ``target_pid`` is the sandbox's PID 1; its namespaces (and the
    user namespace when vkcompose is not root) are entered and ``workdir`` set explicitly.
    """
    inner = [*(["setsid", "--ctty"] if tty else []), *command]
    if isolation not in ("namespaces", "bwrap"):
        return inner
    argv = ["nsenter", "--target", str(target_pid), "--mount", "--uts", "--pid", "--root", "--wd"]
    if isolation == "bwrap":  # nsenter resolves --wd=DIR on the host: change directory inside
        argv.append("--ipc")
        if os.geteuid() != 0:
            argv += ["--user", "--preserve-credentials"]
        inner = ["env", f"--chdir={workdir}", *inner]
    if gid is not None:
        argv += ["--setgid", str(gid)]
    if uid is not None:
        argv += ["--setuid", str(uid)]
    return [*argv, "--", *inner]


def exit_code(returncode: int | None) -> int:
    """A shell-style exit code (``128 + signal`` for a signalled process)."""
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants."""
    try:
        proc = psutil.Process(pid)
        procs = [*proc.children(recursive=True), proc]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)


async def run_captured(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    seconds: float | None,
    limit: int = 10240,
) -> tuple[int, bytes]:
    """Run ``argv`` to completion (killing it after ``seconds``; ``None``: no limit); return
    exit code and output.

    Raises ``TimeoutError`` when ``seconds`` pass.
    """
    proc = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
    )
    output = bytearray()
    try:
        with anyio.fail_after(seconds):
            assert proc.stdout is not None
            async for chunk in proc.stdout:
                if len(output) < limit:
                    output += chunk[: limit - len(output)]
            await proc.wait()
    finally:
        if proc.returncode is None:
            kill_tree(proc.pid)
            with anyio.CancelScope(shield=True):
                await proc.wait()
    return exit_code(proc.returncode), bytes(output)


async def _pump_in(source: anyio.abc.ByteReceiveStream, write: anyio.abc.ByteSendStream) -> None:
    try:
        async for chunk in source:
            await write.send(chunk)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await write.aclose()


async def _pump_out(source: anyio.abc.ByteReceiveStream, sink: anyio.abc.ByteSendStream) -> None:
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        async for chunk in source:
            await sink.send(chunk)


async def run_piped(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | None, io: ExecIO
) -> int:
    """Run ``argv`` with pipes wired to ``io``; return its exit code."""
    proc = await anyio.open_process(
        list(argv),
        stdin=subprocess.PIPE if io.stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if io.stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE if io.stderr is not None else subprocess.DEVNULL,
        env=dict(env),
        cwd=cwd,
    )
    try:
        async with anyio.create_task_group() as tg:
            if io.stdin is not None and proc.stdin is not None:
                tg.start_soon(_pump_in, io.stdin, proc.stdin)
            drained = [anyio.Event(), anyio.Event()]
            for event, out, sink in zip(
                drained, (proc.stdout, proc.stderr), (io.stdout, io.stderr), strict=True
            ):
                if out is not None and sink is not None:
                    tg.start_soon(_until_done, _pump_out(out, sink), event)
                else:
                    event.set()
            await proc.wait()
            with anyio.move_on_after(DRAIN_SECONDS):
                for event in drained:
                    await event.wait()
            tg.cancel_scope.cancel()
    finally:
        if proc.returncode is None:
            kill_tree(proc.pid)
            with anyio.CancelScope(shield=True):
                await proc.wait()
    return exit_code(proc.returncode)


def set_window(fd: int, size: TerminalSize) -> None:
    """Apply a terminal size to a pty."""
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


async def _pty_reader(master: int, sink: anyio.abc.ByteSendStream | None) -> None:
    while True:
        await anyio.wait_readable(master)
        try:
            data = os.read(master, CHUNK)
        except BlockingIOError:
            continue
        except OSError:  # EIO: every slave closed
            return
        if not data:
            return
        if sink is not None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await sink.send(data)


async def _pty_writer(master: int, source: anyio.abc.ByteReceiveStream) -> None:
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        async for chunk in source:
            view = memoryview(chunk)
            while view:
                try:
                    n = os.write(master, view)
                except BlockingIOError:
                    await anyio.wait_writable(master)
                    continue
                except OSError:
                    return
                view = view[n:]


async def _resizer(master: int, sizes: anyio.abc.ObjectReceiveStream[TerminalSize]) -> None:
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        async for size in sizes:
            with contextlib.suppress(OSError):
                set_window(master, size)


async def run_tty(argv: Sequence[str], env: Mapping[str, str], cwd: str | None, io: ExecIO) -> int:
    """Run ``argv`` on a new pty (its controlling terminal) relayed to ``io``."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    try:
        proc = await anyio.open_process(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd
        )
    finally:
        os.close(slave)
    try:
        async with anyio.create_task_group() as tg:
            if io.stdin is not None:
                tg.start_soon(_pty_writer, master, io.stdin)
            if io.resize is not None:
                tg.start_soon(_resizer, master, io.resize)
            drained = anyio.Event()
            tg.start_soon(_until_done, _pty_reader(master, io.stdout), drained)
            await proc.wait()
            with anyio.move_on_after(DRAIN_SECONDS):
                await drained.wait()
            tg.cancel_scope.cancel()
    finally:
        if proc.returncode is None:
            kill_tree(proc.pid)
            with anyio.CancelScope(shield=True):
                await proc.wait()
        os.close(master)
    return exit_code(proc.returncode)


__all__ = ["exec_argv", "exit_code", "kill_tree", "run_captured", "run_piped", "run_tty"]
