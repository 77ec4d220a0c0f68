"""Container probes (exec, httpGet, tcpSocket) and their timing, as the kubelet runs them.

:func:`parse_probe` reads a probe's timing (``initialDelaySeconds``, ``periodSeconds``,
``timeoutSeconds``, ``successThreshold``, ``failureThreshold``) with the Kubernetes defaults;
``scale`` multiplies every duration (tests use fractions of a second — Kubernetes itself only
has whole seconds). :func:`watch` runs a liveness/readiness probe forever and reports each
change of its verdict; :func:`until_decided` runs a startup probe until it succeeds or fails.

>>> p = parse_probe({"tcpSocket": {"port": 80}, "periodSeconds": 2}, scale=0.5)
>>> p.handler, p.period, p.timeout, p.failure_threshold
('tcpSocket', 1.0, 0.5, 3)
>>> resolve_port("http", {"ports": [{"name": "http", "containerPort": 8080}]})
8080
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs

HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
USER_AGENT = "kube-probe/vkcompose"


@attrs.frozen
class Probe:
    """One probe: its handler and timing (seconds, already scaled)."""

    handler: str
    action: Mapping[str, Any]
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None


def parse_probe(probe: Mapping[str, Any] | None, scale: float = 1.0) -> Probe | None:
    """A :class:`Probe` from a container's probe JSON (``None`` if absent or handler-less)."""
    if not probe:
        return None
    handler = next((h for h in HANDLERS if probe.get(h) is not None), None)
    if handler is None:
        return None
    grace = probe.get("terminationGracePeriodSeconds")
    return Probe(
        handler=handler,
        action=probe[handler],
        initial_delay=float(probe.get("initialDelaySeconds") or 0) * scale,
        period=float(probe.get("periodSeconds") or 10) * scale,
        timeout=float(probe.get("timeoutSeconds") or 1) * scale,
        success_threshold=int(probe.get("successThreshold") or 1),
        failure_threshold=int(probe.get("failureThreshold") or 3),
        termination_grace=float(grace) if grace is not None else None,
    )


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"unknown port name {port!r}")


async def tcp_check(host: str, port: int) -> bool:
    """Can a TCP connection be opened?"""
    try:
        stream = await anyio.connect_tcp(host, port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def http_check(
    host: str,
    port: int,
    path: str = "/",
    scheme: str = "HTTP",
    headers: Mapping[str, str] | None = None,
) -> bool:
    """An HTTP GET answered with a status in 200-399 (certificates are not verified)."""
    tls = scheme.upper() == "HTTPS"
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        stream: Any = (
            await anyio.connect_tcp(host, port, ssl_context=context, tls_hostname=host)
            if context is not None
            else await anyio.connect_tcp(host, port)
        )
    except OSError:
        return False
    try:
        head = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
        head.update(headers or {})
        head["Connection"] = "close"
        lines = [f"GET {path or '/'} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            try:
                data += await stream.receive()
            except anyio.EndOfStream:
                break
        parts = data.split(b"\r\n", 1)[0].split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, anyio.BrokenResourceError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()


Check = Callable[[], Awaitable[bool]]


async def _attempt(probe: Probe, check: Check) -> bool:
    try:
        with anyio.fail_after(max(probe.timeout, 0.001)):
            return await check()
    except TimeoutError:
        return False
    except Exception:
        return False


async def _initial_delay(probe: Probe, since: float | None) -> None:
    """Wait out ``initialDelaySeconds``, counted from ``since`` (the container's start, on
    anyio's clock; the kubelet's prober counts from ``state.running.startedAt``) when given."""
    delay = probe.initial_delay
    if since is not None:
        delay -= anyio.current_time() - since
    await anyio.sleep(max(0.0, delay))


async def watch(
    probe: Probe, check: Check, on_change: Callable[[bool], None], *, since: float | None = None
) -> None:
    """Run ``probe`` forever; call ``on_change`` when its verdict flips (thresholds applied).

    The verdict starts unknown: the first verdict reached is always reported.
    """
    await _initial_delay(probe, since)
    verdict: bool | None = None
    successes = failures = 0
    while True:
        ok = await _attempt(probe, check)
        if ok:
            successes, failures = successes + 1, 0
            if successes >= probe.success_threshold and verdict is not True:
                verdict = True
                on_change(True)
        else:
            successes, failures = 0, failures + 1
            if failures >= probe.failure_threshold and verdict is not False:
                verdict = False
                on_change(False)
        await anyio.sleep(probe.period)


async def until_decided(probe: Probe, check: Check, *, since: float | None = None) -> bool:
    """Run a startup probe until it succeeds (``True``) or reaches its failure threshold."""
    await _initial_delay(probe, since)
    failures = 0
    while True:
        if await _attempt(probe, check):
            return True
        failures += 1
        if failures >= probe.failure_threshold:
            return False
        await anyio.sleep(probe.period)


__all__ = [
    "Probe",
    "http_check",
    "parse_probe",
    "resolve_port",
    "tcp_check",
    "until_decided",
    "watch",
]
