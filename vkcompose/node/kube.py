"""One shared connection to a Kubernetes API server, with raw-JSON hot paths.

:class:`Kube` wraps a ``kubernetes_asyncio`` :class:`ApiClient` (configuration, TLS, auth and its
aiohttp connection pool) and adds what the controllers need on their hot paths: requests whose
bodies are encoded and decoded with orjson as plain dicts (no model classes), patches with the
right content type, and a watch stream of raw events. Request/response calls go over a lean
keep-alive HTTP/1.1 pool (:mod:`vkcompose.node.http1`) with the client's TLS settings; watches,
and every call when a proxy is configured, use aiohttp. Every virtual node of a process shares
one ``Kube``.

Configuration is found as kubectl finds it: an explicit kubeconfig path, else ``$KUBECONFIG``,
else ``~/.kube/config``, else the in-cluster service account.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from yarl import URL

from vkcompose._version import __version__
from vkcompose.node.http1 import ConnectionPool

JSON_CT: Final = "application/json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_PATCH: Final = "application/strategic-merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"

USER_AGENT: Final = f"vkcompose/{__version__}"

Query = Mapping[str, str | int | bool] | Sequence[tuple[str, str | int | bool]]

__all__ = [
    "JSON_CT",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_PATCH",
    "Kube",
    "KubeError",
    "connect",
    "path_of",
]


class KubeError(Exception):
    """A non-2xx answer of the API server, with its ``status`` code and Status ``reason``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_body(cls, status: int, body: bytes) -> KubeError:
        """Build from a response (a ``Status`` object when the server sends one)."""
        reason, message = "", body[:300].decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            doc = orjson.loads(body)
            reason = str(doc.get("reason") or "")
            message = str(doc.get("message") or message)
        return cls(status, reason, message)

    @property
    def not_found(self) -> bool:
        """404."""
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409 (already exists, or a precondition / resourceVersion conflict)."""
        return self.status == 409

    @property
    def replaced(self) -> bool:
        """A write that named the object's uid found another object under its name (the API
        server rejects the uid as a changed immutable field, 422, or as a failed precondition,
        409): the one written for was deleted, and maybe created again."""
        return self.conflict or (self.status == 422 and "metadata.uid" in self.message)

    @property
    def gone(self) -> bool:
        """410: the resourceVersion a watch asked for is too old."""
        return self.status == 410


def path_of(
    resource: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    group_version: str = "v1",
    subresource: str | None = None,
) -> str:
    """URL path of a resource collection or object.

    >>> path_of("pods", "web", namespace="default", subresource="status")
    '/api/v1/namespaces/default/pods/web/status'
    >>> path_of("leases", "n1", namespace="kube-node-lease", group_version="coordination.k8s.io/v1")
    '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1'
    """
    root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    parts = [root]
    if namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(resource)
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class Kube:
    """A shared API connection: raw JSON requests, patches and watches over one pool."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        owned: bool = False,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.api_client = api_client
        self._owned = owned
        self.user_agent = user_agent
        cfg = api_client.configuration
        self._host = str(cfg.host).rstrip("/")
        self._base = URL(self._host)
        self._server_hostname = getattr(api_client.rest_client, "server_hostname", None)
        self._needs_auth = bool(cfg.api_key) or cfg.refresh_api_key_hook is not None
        self._extra: dict[str, Any] = {}
        """Per-request keyword arguments fixed for the connection's life (proxy, TLS name)."""
        if self._server_hostname:
            self._extra["server_hostname"] = self._server_hostname
        proxy: object = cfg.proxy
        proxy_auth: aiohttp.BasicAuth | None = None
        if not proxy:
            # the proxy environment is read once, not on every request (aiohttp's trust_env
            # looks it up in a worker thread per request)
            with contextlib.suppress(LookupError, ValueError):
                proxy, proxy_auth = get_env_proxy_for_url(self._base)
        if proxy:
            self._extra["proxy"] = str(proxy)
            if proxy_auth is not None:
                self._extra["proxy_auth"] = proxy_auth
            if cfg.proxy_headers:
                self._extra["proxy_headers"] = cfg.proxy_headers
        self._fixed_headers: dict[str | None, dict[str, str]] = {}
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._session: aiohttp.ClientSession | None = None
        self._pool: ConnectionPool | None = None
        self._head_prefix = b""
        self._fixed_head: dict[str | None, bytes] = {}
        if not proxy and self._base.scheme in ("http", "https") and self._base.host:
            # request/response calls go over the lean HTTP/1.1 pool; streams over aiohttp
            host = self._base.host
            port = self._base.port or (443 if self._base.scheme == "https" else 80)
            self._pool = ConnectionPool(
                host,
                port,
                ssl=_ssl_context(cfg) if self._base.scheme == "https" else None,
                server_hostname=self._server_hostname,
                limit=max(1, int(cfg.connection_pool_maxsize or 64)),
            )
            self._head_prefix = f"Host: {self._base.raw_authority}\r\n".encode("latin-1")
        self.strategic_status_patch = True
        """Cleared when the server refuses strategic-merge patches (then merge patches are
        used)."""

    @property
    def session(self) -> aiohttp.ClientSession:
        """A session over the wrapped client's connection pool (shared connector).

        It differs from the client's own session only in not consulting the proxy environment
        on every request (done once, in the constructor).
        """
        session = self._session
        if session is None or session.closed:
            shared: aiohttp.ClientSession = self.api_client.rest_client.pool_manager
            session = self._session = aiohttp.ClientSession(
                connector=shared.connector, connector_owner=False, trust_env=False
            )
        return session

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        if not self._needs_auth:
            fixed = self._fixed_headers.get(content_type)
            if fixed is None:
                fixed = self._fixed_headers[content_type] = self._base_headers(content_type)
            return fixed
        headers = self._base_headers(content_type)
        await self.api_client.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    def _base_headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON_CT, "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _head(
        self, method: str, path: str, query: Query | None, content_type: str | None
    ) -> bytes:
        """Request line and headers, without the final empty line."""
        if query:
            items = query.items() if isinstance(query, Mapping) else query
            path = f"{path}?{urlencode([(k, _q(v)) for k, v in items])}"
        line = f"{method} {path} HTTP/1.1\r\n".encode("latin-1")
        if not self._needs_auth:
            fixed = self._fixed_head.get(content_type)
            if fixed is None:
                fixed = self._fixed_head[content_type] = self._head_prefix + _header_block(
                    self._base_headers(content_type)
                )
            return line + fixed
        return line + self._head_prefix + _header_block(await self._headers(content_type))

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    def _url(self, path: str, query: Query | None) -> URL:
        if not query:
            return self._base.with_path(path, encoded=True)
        items = query.items() if isinstance(query, Mapping) else query
        return URL(f"{self._host}{path}?{urlencode([(k, _q(v)) for k, v in items])}", encoded=True)

    async def request_raw(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = JSON_CT,
        timeout_seconds: float | None = 30.0,
    ) -> tuple[int, bytes]:
        """Send a request; return ``(status, body bytes)`` whatever the status."""
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        else:
            data = orjson.dumps(body)
        if self._pool is not None:
            return await self._pool.request(
                await self._head(method, path, query, content_type if data is not None else None)
                + (b"Content-Length: %d\r\n\r\n" % len(data) + data if data else b"\r\n"),
                method,
                timeout_seconds,
            )
        headers = await self._headers(content_type if data is not None else None)
        async with self.session.request(
            method,
            self._url(path, query),
            data=data,
            headers=headers,
            timeout=self._timeout(timeout_seconds),
            **self._extra,
        ) as resp:
            return resp.status, await resp.read()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = JSON_CT,
        timeout_seconds: float | None = 30.0,
    ) -> Any:
        """Send a request and return the decoded JSON answer; raise :class:`KubeError`."""
        status, data = await self.request_raw(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            timeout_seconds=timeout_seconds,
        )
        if status >= 300:
            raise KubeError.from_body(status, data)
        return orjson.loads(data) if data else None

    async def get(self, path: str, *, query: Query | None = None) -> Any:
        """GET ``path``."""
        return await self.request("GET", path, query=query)

    async def create(self, path: str, obj: Any) -> Any:
        """POST ``obj`` to the collection ``path``."""
        return await self.request("POST", path, body=obj)

    async def patch(self, path: str, patch: Any, *, content_type: str = MERGE_PATCH) -> Any:
        """PATCH ``path`` (merge patch unless ``content_type`` says otherwise)."""
        return await self.request("PATCH", path, body=patch, content_type=content_type)

    async def delete(self, path: str, *, options: Any = None) -> Any:
        """DELETE ``path`` with an optional ``DeleteOptions`` body."""
        return await self.request("DELETE", path, body=options)

    async def patch_status(
        self, path: str, patch: Mapping[str, Any], *, decode: bool = True
    ) -> Any:
        """Strategic-merge PATCH of a ``/status`` subresource (merge patch if unsupported).

        Strategic merge keeps list items owned by others (conditions are merged by ``type``);
        callers that may fall back to a merge patch should send complete lists. With
        ``decode=False`` the answer is checked but not parsed (``None`` is returned).
        """
        strategic = self.strategic_status_patch
        status, data = await self.request_raw(
            "PATCH",
            path,
            body=patch if strategic else _without_directives(patch),
            content_type=STRATEGIC_PATCH if strategic else MERGE_PATCH,
        )
        if strategic and status == 415:
            self.strategic_status_patch = False
            return await self.patch_status(path, patch, decode=decode)
        if status >= 300:
            raise KubeError.from_body(status, data)
        return orjson.loads(data) if data and decode else None

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, query: Query | None = None, *, read_timeout: float | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A streaming GET (no total timeout; ``read_timeout`` bounds silence), whatever its
        status: the caller reads the aiohttp response."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        async with self.session.get(
            self._url(path, query),
            headers=await self._headers(None),
            timeout=timeout,
            **self._extra,
        ) as resp:
            yield resp

    @contextlib.asynccontextmanager
    async def watch(
        self,
        path: str,
        query: Query,
        *,
        read_timeout: float | None = None,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> AsyncIterator[AsyncIterator[Any]]:
        """Open a watch on ``path`` and yield an iterator of raw events (dicts).

        ``query`` should carry ``resourceVersion``, ``allowWatchBookmarks`` and
        ``timeoutSeconds``; ``watch=1`` is added. A non-200 answer raises :class:`KubeError`
        (410 when the resourceVersion is too old). ``decode`` turns each line into an event
        (e.g. a :class:`~vkcompose.node.spec_reuse.SpecReuse`).
        """
        q = list(query.items() if isinstance(query, Mapping) else query)
        q.append(("watch", "1"))
        async with self.stream(path, q, read_timeout=read_timeout) as resp:
            if resp.status != 200:
                raise KubeError.from_body(resp.status, await resp.read())

            async def events() -> AsyncIterator[Any]:
                # whatever arrived, split into lines here (cheaper than a readline per event)
                rest = b""
                async for data in resp.content.iter_any():
                    lines = (rest + data).split(b"\n") if rest else data.split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if line.strip():
                            yield decode(line)
                if rest.strip():
                    yield decode(rest)

            yield events()

    async def close(self) -> None:
        """Close the connection pool if this object created the client (a client passed in is
        left open for its owner)."""
        if self._pool is not None:
            await self._pool.close()
        if self._session is not None:
            await self._session.close()  # the shared connector stays open
            self._session = None
        if self._owned:
            await self.api_client.close()


def _header_block(headers: Mapping[str, str]) -> bytes:
    """``Name: value`` lines (CR LF after each); values with line breaks are refused."""
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} contains a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def _ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext:
    """The TLS settings of a client configuration, as its REST client applies them."""
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if getattr(cfg, "disable_strict_ssl_verification", False):
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def _q(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def connect(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    pool_size: int = 256,
) -> Kube:
    """Connect as kubectl would: ``kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``, in-cluster.

    The returned :class:`Kube` owns its client; close it with :meth:`Kube.close`.
    ``pool_size`` bounds concurrent connections (each pod watch holds one).
    """
    cfg = k8s_client.Configuration()
    default = Path("~/.kube/config").expanduser()  # noqa: ASYNC240 (a stat, once at startup)
    env = os.environ.get("KUBECONFIG")
    if kubeconfig is not None:
        await k8s_config.load_kube_config(
            config_file=os.fspath(kubeconfig),
            context=context,
            client_configuration=cfg,
            persist_config=False,
        )
    elif env or default.exists():
        await k8s_config.load_kube_config(
            config_file=env or str(default),
            context=context,
            client_configuration=cfg,
            persist_config=False,
        )
    else:
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = pool_size
    return Kube(k8s_client.ApiClient(configuration=cfg), owned=True)


def _without_directives(value: Any) -> Any:
    """``value`` without strategic-merge ``$patch`` list items (a merge patch replaces lists
    whole, which is what a ``replace`` asked for; an item to ``delete`` is simply not sent).

    >>> _without_directives({"podIPs": [{"$patch": "replace"}, {"ip": "10.0.0.2"}]})
    {'podIPs': [{'ip': '10.0.0.2'}]}
    >>> _without_directives({"conditions": [{"type": "A", "$patch": "delete"}]})
    {'conditions': []}
    """
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items()}
    if isinstance(value, list):
        return [
            _without_directives(v) for v in value if not (isinstance(v, dict) and "$patch" in v)
        ]
    return value
