"""The kubelet HTTP API of a virtual node (aiohttp, TLS always), served through the pipeline.

=========================================================  ======================================
route                                                      op
=========================================================  ======================================
``GET /containerLogs/{ns}/{pod}/{container}``              ``ReadLogs`` (chunked, flushed)
``GET|POST /exec/{ns}/{pod}[/{uid}]/{container}``          ``Exec`` over SPDY/3.1 or WebSocket
``GET|POST /attach/{ns}/{pod}[/{uid}]/{container}``        ``Attach`` over SPDY/3.1 or WebSocket
``GET|POST /portForward/{ns}/{pod}[/{uid}]``               ``PortForward`` (SPDY, SPDY-over-WS)
``GET /stats/summary``                                     ``GetStats`` (Summary API JSON)
``GET /metrics/resource``                                  ``GetStats`` as Prometheus text
``GET /pods``, ``GET /runningpods/``                       ``ListPods`` (PodList)
``GET /healthz``                                           —
=========================================================  ======================================

Errors are ``metav1.Status`` bodies: unknown pod/container or path 404, invalid parameters 400,
a capability the backend lacks 501; auth failures 401/403 (:mod:`vkcompose.kubelet.auth`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import anyio
import anyio.abc
import attrs
import orjson
from aiohttp import web

from vkcompose.errors import NotFound, VKComposeError
from vkcompose.kubelet.auth import KubeletAuth
from vkcompose.kubelet.channels import ExecOptions
from vkcompose.kubelet.portforward import (
    TUNNELING_PROTOCOL,
    serve_spdy_port_forward,
    serve_websocket_port_forward,
)
from vkcompose.kubelet.remotecommand import (
    is_websocket_request,
    serve_spdy,
    serve_websocket,
    websocket_protocols,
)
from vkcompose.kubelet.spdy import SessionConfig
from vkcompose.kubelet.spdy.upgrade import is_upgrade_request
from vkcompose.kubelet.stats import METRICS_CONTENT_TYPE, resource_metrics
from vkcompose.kubelet.status import http_status, status_response
from vkcompose.kubelet.websocket_channels import (
    PORT_FORWARD_WEBSOCKET_PROTOCOLS,
    select_subprotocol,
)
from vkcompose.kubelet.websocket_portforward import serve_channel_port_forward
from vkcompose.ops import (
    Attach,
    Exec,
    ExecIO,
    GetPodStatus,
    GetStats,
    ListPods,
    LogOptions,
    NodeInfo,
    Op,
    PortForward,
    ReadLogs,
)

__all__ = ["KubeletServer", "parse_log_options"]

log = logging.getLogger(__name__)

Handler = Callable[[Op], Awaitable[Any]]

_TRUE = frozenset({"1", "true", "True", "TRUE"})


class _BadRequest(Exception):
    pass


class InvalidLogOptions(ValueError):
    """Log options that decode but do not validate (the kubelet answers 422, not 400)."""


def _int_param(query: Any, name: str, minimum: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{name}: invalid value {raw!r}: must be an integer") from None
    if value < minimum:
        raise InvalidLogOptions(
            f"{name}: invalid value {value}: must be greater than or equal to {minimum}"
        )
    return value


def parse_log_options(query: Any) -> LogOptions:
    """``LogOptions`` from ``containerLogs`` query parameters. ``ValueError`` when one does not
    decode (not an integer, an unparsable ``sinceTime``); :class:`InvalidLogOptions` when they
    do not validate (negative ``tailLines``, ``limitBytes``/``sinceSeconds`` < 1, both
    ``sinceSeconds`` and ``sinceTime``)."""
    try:
        tail = _int_param(query, "tailLines", 0)
        limit = _int_param(query, "limitBytes", 1)
        since_seconds = _int_param(query, "sinceSeconds", 1)
    except _BadRequest as exc:
        raise ValueError(str(exc)) from None
    since_time = None
    raw_time = query.get("sinceTime")
    if raw_time:
        try:
            since_time = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"sinceTime: invalid value {raw_time!r}: not RFC 3339") from None
    if since_seconds is not None and since_time is not None:
        raise InvalidLogOptions("at most one of `sinceTime` or `sinceSeconds` may be specified")
    return LogOptions(
        tail_lines=tail,
        limit_bytes=limit,
        timestamps=query.get("timestamps", "") in _TRUE,
        follow=query.get("follow", "") in _TRUE,
        previous=query.get("previous", "") in _TRUE,
        since_seconds=since_seconds,
        since_time=since_time,
    )


def _error(exc: VKComposeError) -> web.Response:
    return status_response(http_status(exc), exc.message or exc.reason)


@web.middleware
async def _status_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and methods as ``Status`` bodies; pipeline errors mapped to codes."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return status_response(404, f"the path {request.path!r} was not found")
    except web.HTTPMethodNotAllowed:
        return status_response(405, f"method {request.method} is not allowed on {request.path}")
    except VKComposeError as exc:
        return _error(exc)


@attrs.define
class KubeletServer:
    """The kubelet API of the node(s) ``node_names`` over ``pipeline``.

    ``node_info`` gives the :class:`NodeInfo` passed to ``GetStats`` (the first node is the one
    ``/stats`` and auth speak for). ``auth=None`` serves without authentication (tests and
    embedding only; :class:`KubeletAuth` with ``insecure_allow_anonymous`` is the explicit
    anonymous mode).
    """

    pipeline: Handler
    node_names: Sequence[str]
    auth: KubeletAuth | None
    node_info: Callable[[str], NodeInfo] | None = None
    session_config: SessionConfig = attrs.field(factory=SessionConfig)
    first_chunk_wait: float = 0.2
    """How long a log request waits for the backend's first bytes before sending headers (so
    errors raised while opening the log still become proper Status responses)."""
    url: str = ""
    port: int = 0
    sessions: collections.Counter[str] = attrs.field(factory=collections.Counter)
    """Streaming sessions served, by ``transport:kind`` (``spdy:exec``, ``websocket:attach``,
    ``websocket:portforward`` …)."""

    # -------------------------------------------------------------------------- app
    def make_app(self) -> web.Application:
        """The aiohttp application with every route."""
        middlewares: list[Any] = [_status_errors]
        if self.auth is not None:
            middlewares.insert(0, self._auth_middleware())
        app = web.Application(middlewares=middlewares, handler_args={"max_field_size": 65536})
        add = app.router.add_route
        add("GET", "/healthz", self.healthz)
        add("GET", "/pods", self.pods)
        add("GET", "/pods/", self.pods)
        add("GET", "/runningpods/", self.running_pods)
        add("GET", "/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        for method in ("GET", "POST"):
            add(method, "/exec/{ns}/{pod}/{container}", self.exec)
            add(method, "/exec/{ns}/{pod}/{uid}/{container}", self.exec)
            add(method, "/attach/{ns}/{pod}/{container}", self.attach)
            add(method, "/attach/{ns}/{pod}/{uid}/{container}", self.attach)
            add(method, "/portForward/{ns}/{pod}", self.port_forward)
            add(method, "/portForward/{ns}/{pod}/{uid}", self.port_forward)
        add("GET", "/stats/summary", self.stats_summary)
        add("GET", "/stats/summary/", self.stats_summary)
        add("GET", "/metrics/resource", self.metrics_resource)
        return app

    def _auth_middleware(self) -> Any:
        auth = self.auth
        assert auth is not None

        @web.middleware
        async def authenticate(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            result = await auth.check(request)
            if not result.ok:
                return status_response(result.status, result.message)
            return await handler(request)

        return authenticate

    @contextlib.asynccontextmanager
    async def running(
        self, ssl_context: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0
    ) -> AsyncIterator[KubeletServer]:
        """Serve on ``host:port`` (0: any free port; see :attr:`port`) until the block ends."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
            await site.start()
            server = site._server
            sockets = list(getattr(server, "sockets", None) or [])
            self.port = int(sockets[0].getsockname()[1]) if sockets else port
            self.url = f"https://{host}:{self.port}"
            log.info("kubelet API of %s on %s", ", ".join(self.node_names[:3]), self.url)
            yield self
        finally:
            await runner.cleanup()

    # ------------------------------------------------------------------------ helpers
    @property
    def primary(self) -> str:
        """The node this API speaks for in ``/stats`` and authorization."""
        return self.node_names[0] if self.node_names else ""

    def _supports(self, op_type: type[Op]) -> bool:
        supports = getattr(self.pipeline, "supports", None)
        return True if supports is None else bool(supports(op_type))

    async def _check_pod(self, namespace: str, name: str, container: str | None) -> None:
        """Raise NotFound for an unknown pod or container (when the backend reports status)."""
        if not self._supports(GetPodStatus):
            return
        pod = await self.pipeline(GetPodStatus(namespace, name))
        if container is None:
            return
        spec = (pod or {}).get("spec") or {}
        names = {
            c.get("name")
            for key in ("containers", "initContainers", "ephemeralContainers")
            for c in spec.get(key) or []
        }
        if names and container not in names:
            raise NotFound(f"container {container} is not valid for pod {name}")

    # ------------------------------------------------------------------------- routes
    async def healthz(self, request: web.Request) -> web.StreamResponse:
        """Liveness: ``ok``."""
        return web.Response(text="ok")

    async def _pod_list(self) -> list[Any]:
        pods = await self.pipeline(ListPods())
        return list(pods or [])

    async def pods(self, request: web.Request) -> web.StreamResponse:
        """The node's pods as a ``PodList``."""
        items = await self._pod_list()
        return _json({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def running_pods(self, request: web.Request) -> web.StreamResponse:
        """The node's running pods as a ``PodList``."""
        items = [
            p for p in await self._pod_list() if (p.get("status") or {}).get("phase") == "Running"
        ]
        return _json({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        """Stream a container's log (``follow`` keeps the response open)."""
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        try:
            options = parse_log_options(request.query)
        except InvalidLogOptions as exc:
            return status_response(422, str(exc))  # as the kubelet: decoded, not valid
        except ValueError as exc:
            return status_response(400, str(exc))
        result = await self.pipeline(ReadLogs(ns, pod, container=container, options=options))
        if inspect.isawaitable(result):
            result = await result
        chunks: AsyncIterator[bytes] = aiter(result)
        first = asyncio.ensure_future(anext(chunks, b""))
        done, _ = await asyncio.wait({first}, timeout=self.first_chunk_wait)
        if done:
            try:
                pending: bytes | None = first.result()
            except VKComposeError as exc:
                return _error(exc)
        else:
            pending = None
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if pending is None:
                pending = await first
            if pending:
                await response.write(pending)
                async for chunk in chunks:
                    await response.write(chunk)
        except (ConnectionError, VKComposeError) as exc:
            log.debug("log stream of %s/%s ended: %s", ns, pod, type(exc).__name__)
        finally:
            first.cancel()
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _remote_command(self, request: web.Request, op_type: type[Op]) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        try:
            # tty with stderr: stderr is dropped, as the kubelet does (clients often ask both)
            options = ExecOptions.from_query(request.query.items())
        except ValueError as exc:
            return status_response(400, str(exc))
        if op_type is Exec and not options.command:
            return status_response(400, "you must specify at least one command for the container")
        if not self._supports(op_type):
            return status_response(501, f"the backend does not support {op_type.kind}")
        await self._check_pod(ns, pod, container)

        if op_type is Exec:

            async def run(io: ExecIO) -> int:
                code = await self.pipeline(
                    Exec(ns, pod, container=container, command=options.command, io=io)
                )
                return int(code or 0)
        else:

            async def run(io: ExecIO) -> int:
                # the kubelet's attach ends in Success whatever the container's exit code
                await self.pipeline(Attach(ns, pod, container=container, io=io))
                return 0

        kind = "exec" if op_type is Exec else "attach"
        if is_websocket_request(request):
            self.sessions[f"websocket:{kind}"] += 1
            return await serve_websocket(
                request, options, run, idle_timeout=self.session_config.idle_timeout
            )
        if not is_upgrade_request(request.headers.items()):
            return status_response(400, "Upgrade request required")
        self.sessions[f"spdy:{kind}"] += 1
        return await serve_spdy(request, options, run, config=self.session_config)

    async def exec(self, request: web.Request) -> web.StreamResponse:
        """Run a command in a container (remote-command protocol)."""
        return await self._remote_command(request, Exec)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        """Attach to a container's main process (remote-command protocol)."""
        return await self._remote_command(request, Attach)

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """Forward connections to the pod's ports."""
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        if not self._supports(PortForward):
            return status_response(501, "the backend does not support pod.portforward")
        await self._check_pod(ns, pod, None)

        async def forward(port: int, stream: anyio.abc.ByteStream) -> None:
            await self.pipeline(PortForward(ns, pod, port=port, stream=stream))

        describe = f"{ns}/{pod}"
        if is_websocket_request(request):
            self.sessions["websocket:portforward"] += 1
            offered = websocket_protocols(request)
            if TUNNELING_PROTOCOL not in offered:
                # channels, not tunnelled SPDY (the kubelet serves both)
                channel = select_subprotocol(offered, PORT_FORWARD_WEBSOCKET_PROTOCOLS)
                if channel is not None:
                    return await serve_channel_port_forward(
                        request, channel, forward, describe=describe
                    )
            return await serve_websocket_port_forward(
                request,
                offered,
                forward,
                config=self.session_config,
                describe=describe,
            )
        if not is_upgrade_request(request.headers.items()):
            return status_response(400, "Upgrade request required")
        self.sessions["spdy:portforward"] += 1
        return await serve_spdy_port_forward(
            request, forward, config=self.session_config, describe=describe
        )

    async def _summary(self) -> Any:
        info = (
            self.node_info(self.primary)
            if self.node_info is not None
            else NodeInfo(name=self.primary)
        )
        return await self.pipeline(GetStats(node=info))

    async def stats_summary(self, request: web.Request) -> web.StreamResponse:
        """The kubelet Summary API document."""
        return _json(await self._summary())

    async def metrics_resource(self, request: web.Request) -> web.StreamResponse:
        """Resource metrics in the Prometheus text format (what metrics-server scrapes)."""
        try:
            text = resource_metrics(await self._summary())
        except Exception as exc:
            log.warning("resource metrics: stats failed: %s", type(exc).__name__)
            text = resource_metrics(None, error=True)
        return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")
