"""Kubelet proxying: ``pods/log``, ``pods/exec``, ``pods/attach``, ``pods/portforward`` and
``nodes/proxy``, as kube-apiserver serves them.

The user is authenticated and authorized like any other request (``get`` on ``pods`` for logs,
``create``/``get`` for the streaming subresources, ``get``/... on ``nodes`` for the node proxy).
The pod's node gives the kubelet address: its ``InternalIP`` and
``status.daemonEndpoints.kubeletEndpoint.Port``. The API server connects there with its
kubelet-client certificate (the kubelet's serving certificate is verified only when a kubelet
CA is configured, as kube-apiserver without ``--kubelet-certificate-authority``) and relays:

* plain requests (logs, ``nodes/<n>/proxy/...``) as a streaming HTTP proxy, flushing each chunk;
* upgrade requests (SPDY/3.1 for exec/attach/port-forward, and WebSocket) by forwarding the
  upgrade request, answering the client with the kubelet's ``101`` and piping the raw bytes of
  both connections, as kube-apiserver's ``UpgradeAwareHandler`` does. WebSocket clients
  (kubectl's KEP-4006 default) therefore reach the kubelet's own WebSocket endpoints
  (``v5.channel.k8s.io`` for exec/attach, ``SPDY/3.1+portforward.k8s.io`` for port-forward);
  no protocol translation happens here, and no SPDY code is needed.

This module talks to kubelets only over HTTP: it never imports the kubelet package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from vkcompose.apiserver import errors
from vkcompose.apiserver.errors import APIError
from vkcompose.apiserver.handlers import APIHandler, error_response
from vkcompose.apiserver.pki import KeyPair

__all__ = ["KubeletProxy", "add_proxy_routes", "kubelet_target"]

log = logging.getLogger(__name__)

_POD_SUB: Final = re.compile(
    r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/(log|exec|attach|portforward)$"
)
_NODE_PROXY: Final = re.compile(r"^/api/v1/nodes/([^/]+)/proxy(/.*)?$")
_DEFAULT_KUBELET_PORT: Final = 10250
_LOG_PARAMS: Final = (
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
)
_HOP_BY_HOP: Final = frozenset(
    {
        "host",
        "authorization",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "accept-encoding",
        "impersonate-user",
        "impersonate-group",
    }
)
_HIGH_WATER: Final = 1 << 20


def kubelet_target(node: dict[str, Any]) -> tuple[str, int]:
    """``(address, port)`` of a Node's kubelet: its InternalIP (else any address) and
    ``status.daemonEndpoints.kubeletEndpoint.Port`` (10250 when unset)."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    address = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    if not address and addresses:
        address = addresses[0].get("address")
    if not address:
        raise APIError(
            503,
            f"no preferred addresses found for node {node.get('metadata', {}).get('name')}",
            reason="ServiceUnavailable",
        )
    endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    port = int(endpoint.get("Port") or _DEFAULT_KUBELET_PORT)
    return str(address), port


def _is_upgrade(request: web.BaseRequest) -> bool:
    return "upgrade" in request.headers.get("Connection", "").lower()


class _Hijacked:
    """The raw byte stream of an upgraded server connection (aiohttp payload-parser hook)."""

    def __init__(self, request: web.BaseRequest) -> None:
        assert request.protocol is not None and request.transport is not None
        self._protocol: Any = request.protocol
        self._transport: asyncio.Transport = request.transport
        self._buffer = bytearray()
        self._eof = False
        self._paused = False
        self._event = asyncio.Event()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._buffer += data
        self._event.set()
        if len(self._buffer) > _HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._event.set()

    async def receive(self) -> bytes:
        while not self._buffer:
            if self._eof or self._transport.is_closing():
                return b""
            self._event.clear()
            await self._event.wait()
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        return data

    async def send(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError
        self._transport.write(data)
        await self._protocol._drain_helper()

    def close(self) -> None:
        self._transport.close()


class KubeletProxy:
    """Serves the kubelet-backed subresources for an :class:`APIHandler`."""

    def __init__(
        self,
        handler: APIHandler,
        client: KeyPair,
        *,
        kubelet_ca: Path | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.handler = handler
        self.connect_timeout = connect_timeout
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if kubelet_ca is not None:
            context.load_verify_locations(cafile=str(kubelet_ca))
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(client.cert_path, client.key_path)
        self.ssl = context

    @staticmethod
    def matches(path: str) -> bool:
        """Whether ``path`` is served by the proxy."""
        return bool(_POD_SUB.match(path) or _NODE_PROXY.match(path))

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Authenticate, authorize, locate the kubelet and relay ``request`` to it."""
        try:
            user = self.handler._authenticate(request)
            target = self._locate(request, user)
        except APIError as err:
            return error_response(err)
        host, port, path, query = target
        url_path = path + (f"?{urlencode(query)}" if query else "")
        try:
            if _is_upgrade(request):
                return await self._relay_upgrade(request, host, port, url_path)
            return await self._relay_http(request, host, port, url_path)
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            return error_response(
                APIError(
                    502,
                    f"error dialing backend: {type(exc).__name__}: {exc}",
                    reason="InternalError",
                )
            )

    # ------------------------------------------------------------------------ lookup
    def _locate(self, request: web.BaseRequest, user: Any) -> tuple[str, int, str, list[Any]]:
        handler = self.handler
        table = handler.table
        method = request.method
        if match := _NODE_PROXY.match(request.path):
            node_name, rest = match.group(1), match.group(2) or "/"
            nodes_rt = table.lookup("", "v1", "nodes")
            verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update"}.get(
                method, method.lower()
            )
            handler._authorize(user, verb, nodes_rt, "", request.path, node_name)
            assert nodes_rt is not None
            node = handler.registry.get(nodes_rt, "", node_name).obj
            host, port = kubelet_target(node)
            return host, port, rest, list(request.query.items())
        match = _POD_SUB.match(request.path)
        assert match is not None
        namespace, name, sub = match.groups()
        pods_rt = table.lookup("", "v1", "pods")
        assert pods_rt is not None
        if sub == "log":
            if method not in ("GET", "HEAD"):
                raise errors.method_not_allowed()
            verb = "get"
        else:
            if method not in ("GET", "POST"):
                raise errors.method_not_allowed()
            verb = "create" if method == "POST" else "get"
        handler._authorize(user, verb, pods_rt, namespace, request.path, name)
        pod = handler.registry.get(pods_rt, namespace, name).obj
        spec = pod.get("spec") or {}
        node_name = spec.get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        nodes_rt = table.lookup("", "v1", "nodes")
        assert nodes_rt is not None
        node = handler.registry.get(nodes_rt, "", node_name).obj
        host, port = kubelet_target(node)
        ns_q, name_q = quote(namespace, safe=""), quote(name, safe="")
        if sub == "portforward":
            query = [(k, v) for k, v in request.query.items()]
            return host, port, f"/portForward/{ns_q}/{name_q}", query
        container = self._container(pod, request.query.get("container", ""), sub)
        c_q = quote(container, safe="")
        if sub == "log":
            query = [(k, v) for k, v in request.query.items() if k in _LOG_PARAMS]
            return host, port, f"/containerLogs/{ns_q}/{name_q}/{c_q}", query
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise errors.bad_request(
                f"cannot {sub} into a container in a completed pod; current phase is {phase}"
            )
        query = [(k, v) for k, v in request.query.items() if k != "container"]
        return host, port, f"/{sub}/{ns_q}/{name_q}/{c_q}", query

    @staticmethod
    def _container(pod: dict[str, Any], container: str, sub: str) -> str:
        spec = pod.get("spec") or {}
        name = (pod.get("metadata") or {}).get("name", "")
        containers = [c.get("name") for c in spec.get("containers") or []]
        every = containers + [
            c.get("name")
            for key in ("initContainers", "ephemeralContainers")
            for c in spec.get(key) or []
        ]
        if not container:
            if len(containers) == 1:
                return str(containers[0])
            choices = " ".join(str(c) for c in containers)
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{choices}]"
            )
        if container not in every:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return container

    # ------------------------------------------------------------------------ relays
    def _forward_headers(self, request: web.BaseRequest) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        remote = request.remote or ""
        if remote:
            headers.append(("X-Forwarded-For", remote))
        return headers

    async def _relay_http(
        self, request: web.BaseRequest, host: str, port: int, url_path: str
    ) -> web.StreamResponse:
        headers = [
            (k, v)
            for k, v in self._forward_headers(request)
            if k.lower() not in ("connection", "upgrade")
        ]
        body = await request.read() if request.can_read_body else None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout)
        connector = aiohttp.TCPConnector(ssl=self.ssl, force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.request(
                request.method,
                f"https://{_host(host)}:{port}{url_path}",
                headers=headers,
                data=body,
                allow_redirects=False,
                auto_decompress=False,
            ) as upstream,
        ):
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    response.headers.add(key, value)
            length = upstream.headers.get("Content-Length")
            if length is not None:
                response.content_length = int(length)
            else:
                response.enable_chunked_encoding()
            await response.prepare(request)
            with contextlib.suppress(ConnectionError, aiohttp.ClientPayloadError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response

    async def _relay_upgrade(
        self, request: web.BaseRequest, host: str, port: int, url_path: str
    ) -> web.StreamResponse:
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self.ssl, server_hostname=host, limit=1 << 20
            )
        try:
            head = [f"{request.method} {url_path} HTTP/1.1", f"Host: {_host(host)}:{port}"]
            head += [f"{k}: {v}" for k, v in self._forward_headers(request)]
            head.append("Content-Length: 0")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            async with asyncio.timeout(self.connect_timeout):
                raw = await reader.readuntil(b"\r\n\r\n")
            status, reason, headers = _parse_head(raw)
            if status != 101:
                length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
                async with asyncio.timeout(self.connect_timeout):
                    body = await reader.readexactly(length) if length is not None else b""
                response = web.Response(status=status, reason=reason, body=body)
                for key, value in headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        response.headers.add(key, value)
                return response
            upgraded = web.StreamResponse(status=101, reason=reason)
            for key, value in headers:
                if key.lower() not in ("content-length", "date", "server"):
                    upgraded.headers.add(key, value)
            client = _Hijacked(request)
            await upgraded.prepare(request)
            request.protocol.keep_alive(False)
            request.protocol.set_parser(client)  # type: ignore[arg-type]
            await _pipe(client, reader, writer)
            return upgraded
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _pipe(
    client: _Hijacked, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Copy bytes both ways until either side ends."""

    async def upstream() -> None:
        while data := await client.receive():
            writer.write(data)
            await writer.drain()

    async def downstream() -> None:
        while data := await reader.read(1 << 16):
            await client.send(data)

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client.close()


def _parse_head(raw: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"malformed response from the kubelet: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers.append((key.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def add_proxy_routes(
    handler: APIHandler, client: KeyPair, *, kubelet_ca: Path | None = None
) -> web.Server:
    """The API server's low-level aiohttp server: kubelet-proxied paths go to
    :class:`KubeletProxy`, everything else to ``handler``."""
    proxy = KubeletProxy(handler, client, kubelet_ca=kubelet_ca)
    route: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]] = handler.handle

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        if proxy.matches(request.path):
            return await proxy.handle(request)
        return await route(request)

    return web.Server(dispatch, handler_cancellation=True, access_log=None)
