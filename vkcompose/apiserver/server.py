"""Serving: :class:`APIServer`, :func:`embedded_apiserver` and :func:`serve_forever`."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime
import logging
import secrets
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from vkcompose.apiserver import errors, validation
from vkcompose.apiserver.auth import ADMIN, Authenticator, UserInfo
from vkcompose.apiserver.handlers import APIHandler, Reviews
from vkcompose.apiserver.pki import PKI, load_or_create_pki
from vkcompose.apiserver.proxy import add_proxy_routes
from vkcompose.apiserver.registry import Registry, rfc3339
from vkcompose.apiserver.resources import ResourceTable
from vkcompose.apiserver.storage import Storage, open_storage
from vkcompose.apiserver.watch import WatchHub

__all__ = ["APIServer", "embedded_apiserver", "serve_forever"]

log = logging.getLogger(__name__)

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBERNETES_SERVICE_IP = "10.96.0.1"


_PKI_CACHE: dict[str, PKI] = {}


def _load_pki(data_dir: Path | None) -> PKI:
    """The PKI under ``data_dir``; servers without a data dir share one per process (generating
    keys is the slowest part of a start)."""
    if data_dir is not None:
        return load_or_create_pki(data_dir)
    if "shared" not in _PKI_CACHE:
        shared = Path(tempfile.mkdtemp(prefix="vkcompose-pki-"))
        atexit.register(shutil.rmtree, shared, True)
        _PKI_CACHE["shared"] = load_or_create_pki(shared)
    return _PKI_CACHE["shared"]


class APIServer:
    """An embedded Kubernetes-compatible API server on 127.0.0.1.

    ``storage`` is ``"memory"`` or ``"sqlite"`` (``data_dir/state.db``). ``data_dir`` also holds
    the generated PKI and ``kubeconfig``; without one a temporary directory is used and removed
    on :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        storage: str = "memory",
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 60.0,
        history: int = 10_000,
        token_volume: bool = True,
        controllers: bool = True,
        request_observer: Callable[[web.BaseRequest], None] | None = None,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = (
            Path(data_dir)
            if data_dir is not None
            else Path(tempfile.mkdtemp(prefix="vkcompose-apiserver-"))
        )
        self.storage_kind = storage
        self.tls = tls
        self.host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.history = history
        self.token_volume = token_volume
        self.run_controllers = controllers
        self.request_observer = request_observer
        """Called with every request before it is served (counters for benchmarks); set it
        before :meth:`start`."""
        self.admin_token = ""
        self.ca_path: Path | None = None
        self.kubeconfig_path = self.data_dir / "kubeconfig"
        self.url = ""
        self.storage: Storage | None = None
        self.hub = WatchHub(history=history)
        self.table = ResourceTable()
        self.authenticator = Authenticator()
        self._runner: web.ServerRunner | None = None
        self._handler: APIHandler | None = None
        self._registry: Registry | None = None
        self._ssl: ssl.SSLContext | None = None
        self._ca_pem: str | None = None
        self._client_cert: tuple[Path, Path] | None = None
        self._background: list[Any] = []
        self.pki: PKI
        pods = self.table.lookup("", "v1", "pods")
        assert pods is not None
        self._pods_rt = pods

    @property
    def registry(self) -> Registry:
        """The resource registry (in-process access, bypassing HTTP)."""
        if self._registry is None:
            raise RuntimeError("the API server is not started")
        return self._registry

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open storage, bootstrap objects, listen, write the kubeconfig."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._setup_credentials()
        db = str(self.data_dir / "state.db") if self.storage_kind == "sqlite" else None
        self.storage = open_storage(self.storage_kind, db)
        self._registry = Registry(
            self.storage,
            self.hub,
            self.table,
            validate=validation.validate_causes,
            token_volume=self.token_volume,
            root_ca_pem=self._ca_pem,
        )
        reviews = Reviews(self.authenticator)
        self._setup_tokens(reviews)
        self._handler = APIHandler(
            self._registry,
            self.hub,
            self.table,
            self.authenticator,
            server_address=lambda: f"{self.host}:{self.port}",
            bookmark_interval=self.bookmark_interval,
            reviews=reviews,
        )
        low_level = add_proxy_routes(self._handler, self.pki.kubelet_client)
        if self.request_observer is not None:
            low_level.request_handler = _observed(low_level.request_handler, self.request_observer)
        self._runner = web.ServerRunner(low_level, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        sockets: list[Any] = list(getattr(server, "sockets", None) or [])
        self.port = int(sockets[0].getsockname()[1])
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://{self.host}:{self.port}"
        self._bootstrap()
        self._write_kubeconfig()
        if self.run_controllers:
            await self._start_controllers()

    async def stop(self) -> None:
        """Stop serving, close storage, remove a temporary data dir."""
        for task in self._background:
            stop = getattr(task, "stop", None)
            if stop is not None:
                await stop()
            elif isinstance(task, asyncio.Task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._background.clear()
        if self._handler is not None:
            self._handler.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.storage is not None:
            self.storage.close()
            self.storage = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def __aenter__(self) -> APIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ credentials
    def _setup_credentials(self) -> None:
        token_file = self.data_dir / "admin.token"
        if token_file.exists():
            self.admin_token = token_file.read_text().strip()
        else:
            self.admin_token = secrets.token_urlsafe(32)
            token_file.write_text(self.admin_token)
            token_file.chmod(0o600)
        self.authenticator.add_token(self.admin_token, ADMIN)
        self.pki = _load_pki(None if self._own_dir else self.data_dir)
        self._ca_pem = self.pki.ca.cert_pem.decode()
        self._setup_tls()

    def _setup_tls(self) -> None:
        if self.tls:
            self._ssl = self.pki.server_ssl_context()
            self._client_cert = (self.pki.admin.cert_path, self.pki.admin.key_path)
        self.ca_path = self.pki.ca_path

    def _setup_tokens(self, reviews: Reviews) -> None:
        """Service-account tokens: verification for authentication and TokenReview,
        issuing for TokenRequest."""
        from vkcompose.apiserver.tokens import DEFAULT_AUDIENCE, TokenIssuer

        issuer = TokenIssuer(self.pki.service_account_key)
        api_audiences = [DEFAULT_AUDIENCE]

        def review(token: str, audiences: list[str] | None) -> UserInfo | None:
            user = issuer.verify(token, audiences=audiences or api_audiences)
            if user is None:
                return None
            return UserInfo(user.username, user.groups, user.uid, dict(user.extra))

        def verify(token: str) -> UserInfo | None:
            return review(token, None)

        def issue(
            namespace: str,
            name: str,
            sa_uid: str,
            audiences: list[str],
            expiration: int,
            bound: dict[str, Any] | None,
        ) -> tuple[str, str]:
            pod = node = None
            if bound and bound.get("kind") == "Pod":
                pod_obj = self.registry.get(self._pods_rt, namespace, str(bound.get("name")))
                meta = pod_obj.obj["metadata"]
                if bound.get("uid") and bound["uid"] != meta.get("uid"):
                    raise errors.conflict(
                        "pods",
                        meta["name"],
                        "the UID in the bound object reference does not match the pod",
                    )
                pod = (meta["name"], meta.get("uid", ""))
                node_name = (pod_obj.obj.get("spec") or {}).get("nodeName")
                node_obj = self.registry.storage.get("nodes", "", node_name) if node_name else None
                if node_obj is not None:
                    node = (str(node_name), node_obj.obj["metadata"].get("uid", ""))
            token, expires = issuer.issue(
                namespace=namespace,
                service_account=name,
                sa_uid=sa_uid,
                audiences=audiences or api_audiences,
                expiration_seconds=expiration,
                pod=pod,
                node=node,
            )
            return token, rfc3339(datetime.datetime.fromtimestamp(expires, datetime.UTC))

        self.authenticator.verifiers.append(verify)
        reviews.review_token = review
        reviews.issue_token = issue

    async def _start_controllers(self) -> None:
        """Start the binder and node-lifecycle controllers (controllers module)."""
        from vkcompose.apiserver.controllers import start_controllers

        self._background.extend(await start_controllers(self.registry))

    def _write_kubeconfig(self) -> None:
        from vkcompose.apiserver.pki import write_kubeconfig

        client = self.pki.admin if self._client_cert is not None else None
        write_kubeconfig(
            self.kubeconfig_path,
            server=self.url,
            ca_path=self.ca_path,
            client=client,
            token=None if client is not None else self.admin_token,
        )

    # ------------------------------------------------------------------ bootstrap
    def _bootstrap(self) -> None:
        reg = self.registry
        ns_rt = self.table.lookup("", "v1", "namespaces")
        svc_rt = self.table.lookup("", "v1", "services")
        ep_rt = self.table.lookup("", "v1", "endpoints")
        assert ns_rt is not None and svc_rt is not None and ep_rt is not None
        for name in BOOTSTRAP_NAMESPACES:
            if reg.storage.get(ns_rt.key, "", name) is None:
                reg.create(
                    ns_rt, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                )
        ports = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}]
        svc = reg.storage.get(svc_rt.key, "default", "kubernetes")
        if svc is None:
            reg.create(
                svc_rt,
                "default",
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kubernetes",
                        "namespace": "default",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {
                        "type": "ClusterIP",
                        "clusterIP": KUBERNETES_SERVICE_IP,
                        "ports": ports,
                        "sessionAffinity": "None",
                    },
                },
            )
        elif (svc.obj.get("spec") or {}).get("ports") != ports:
            obj = dict(svc.obj)
            obj["spec"] = {**obj["spec"], "ports": ports}
            reg.update(svc_rt, "default", "kubernetes", obj)
        endpoints = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [
                {
                    "addresses": [{"ip": self.host}],
                    "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
                }
            ],
        }
        current = reg.storage.get(ep_rt.key, "default", "kubernetes")
        if current is None:
            reg.create(ep_rt, "default", endpoints)
        elif current.obj.get("subsets") != endpoints["subsets"]:
            reg.update(ep_rt, "default", "kubernetes", endpoints)

    # ------------------------------------------------------------------ clients
    async def api_client(self) -> Any:
        """A ``kubernetes_asyncio.client.ApiClient`` with admin credentials (close it after)."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        await config.load_kube_config(
            config_file=str(self.kubeconfig_path), client_configuration=cfg
        )
        return client.ApiClient(cfg)


def _observed(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
    observer: Callable[[web.BaseRequest], None],
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    async def observed(request: web.BaseRequest) -> web.StreamResponse:
        observer(request)
        return await handler(request)

    return observed


@contextlib.asynccontextmanager
async def embedded_apiserver(
    data_dir: Path | None = None,
    *,
    storage: str = "memory",
    tls: bool = True,
    port: int = 0,
    **kwargs: Any,
) -> AsyncIterator[APIServer]:
    """Run an :class:`APIServer` for the duration of the ``async with`` block."""
    server = APIServer(data_dir, storage=storage, tls=tls, port=port, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def serve_forever(
    data_dir: Path,
    *,
    port: int = 6443,
    host: str = "127.0.0.1",
    storage: str = "sqlite",
    tls: bool = True,
    on_ready: Callable[[APIServer], None] | None = None,
) -> None:
    """Run the API server until cancelled (``vkcompose apiserver``); ``on_ready`` receives the
    started server (e.g. to print ``server.kubeconfig_path``)."""
    server = APIServer(Path(data_dir), storage=storage, tls=tls, host=host, port=port)
    await server.start()
    try:
        if on_ready is not None:
            on_ready(server)
        await asyncio.Event().wait()
    finally:
        await server.stop()
