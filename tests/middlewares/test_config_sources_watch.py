"""Watch-fed caches over real HTTP against the embedded API server (and the real kubectl)."""

from __future__ import annotations

import base64
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from kubernetes_asyncio import client

from vkcompose.apiserver import APIServer, embedded_apiserver
from vkcompose.errors import InvalidInput, TemporaryError
from vkcompose.middlewares.config_sources import ResolveConfigSources, resolve_env
from vkcompose.middlewares.config_sources_watch import WatchedServices, WatchedSources
from vkcompose.middlewares.service_links import ServiceLinks
from vkcompose.ops import CreatePod
from vkcompose.pipeline import compose

pytestmark = pytest.mark.anyio

SECRET_VALUE = "s3cr3t-$(not-expanded)"


def kubectl() -> str:
    path = shutil.which("kubectl", path=os.path.dirname(sys.executable))
    assert path, "the pinned kubectl binary is installed next to the interpreter"
    return path


async def eventually(check: Callable[[], bool]) -> None:
    """Poll ``check`` (the caches have no change notification) with a hang guard."""
    with anyio.fail_after(10):
        for _ in range(100_000):
            if check():
                return
            await anyio.sleep(0.02)


@pytest.fixture
async def api(apiserver: APIServer) -> AsyncIterator[Any]:
    api_client = await apiserver.api_client()
    try:
        yield api_client
    finally:
        await api_client.close()


def configmap(name: str, data: dict[str, str], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


async def start(tg: Any, runner: Callable[..., Awaitable[None]]) -> None:
    with anyio.fail_after(10):
        await tg.start(runner)


async def test_sources_follow_the_cluster(api: Any) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", configmap("early", {"k": "v1"}))
    await core.create_namespaced_secret(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
        },
    )
    sources = WatchedSources(api, timeout_seconds=5)
    with pytest.raises(TemporaryError):
        sources.get_configmap("default", "early")
    async with anyio.create_task_group() as tg:
        await start(tg, sources.run)
        early = sources.get_configmap("default", "early")
        assert early is not None and early["data"] == {"k": "v1"}

        await core.create_namespaced_config_map("default", configmap("late", {"k": "v2"}))
        await eventually(lambda: sources.get_configmap("default", "late") is not None)
        await core.patch_namespaced_config_map("early", "default", {"data": {"k": "v3"}})
        await eventually(
            lambda: (sources.get_configmap("default", "early") or {}).get("data") == {"k": "v3"}
        )
        await core.delete_namespaced_config_map("late", "default")
        await eventually(lambda: sources.get_configmap("default", "late") is None)

        pod = {"metadata": {"namespace": "default"}, "spec": {"containers": [{"name": "c"}]}}
        container = {
            "name": "c",
            "env": [
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}
            ],
        }
        resolved = resolve_env(pod, container, sources)
        assert resolved.as_dict() == {"P": SECRET_VALUE}
        assert SECRET_VALUE not in repr(sources) and SECRET_VALUE not in repr(resolved)
        assert sources.configmaps.lists == 1
        tg.cancel_scope.cancel()


async def test_missing_configmap_then_created_with_kubectl(apiserver: APIServer, api: Any) -> None:
    created: list[dict[str, Any]] = []

    class Backend:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            created.append(pod)

    sources = WatchedSources(api, namespace="default", secrets=False, timeout_seconds=5)
    pipeline = compose(ResolveConfigSources(sources), backend=Backend())
    pod = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "envFrom": [{"configMapRef": {"name": "app"}}],
                    "args": ["--level=$(LEVEL)"],
                }
            ]
        },
    }
    async with anyio.create_task_group() as tg:
        await start(tg, sources.run)
        with pytest.raises(InvalidInput) as info:
            await pipeline(CreatePod(pod=pod))
        assert info.value.reason == "CreateContainerConfigError"
        assert info.value.message == 'configmap "app" not found'
        assert created == []

        manifest = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {LEVEL: debug}\n"
        proc = await anyio.run_process(
            [kubectl(), "--kubeconfig", str(apiserver.kubeconfig_path), "apply", "-f", "-"],
            input=manifest,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        await eventually(lambda: sources.get_configmap("default", "app") is not None)
        await pipeline(CreatePod(pod=pod))
        container = created[0]["spec"]["containers"][0]
        assert container["env"] == [{"name": "LEVEL", "value": "debug"}]
        assert container["args"] == ["--level=debug"]
        tg.cancel_scope.cancel()


async def test_services_feed_service_links(api: Any) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_service(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "redis-primary"},
            "spec": {"ports": [{"name": "redis", "port": 6379}]},
        },
    )
    created: list[dict[str, Any]] = []

    class Backend:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            created.append(pod)

    services = WatchedServices(api, timeout_seconds=5)
    with pytest.raises(TemporaryError):
        services.list_services("default")
    async with anyio.create_task_group() as tg:
        await start(tg, services.run)
        names = {s["metadata"]["name"] for s in services.list_services("default")}
        assert {"kubernetes", "redis-primary"} <= names
        pipeline = compose(
            ServiceLinks(services), ResolveConfigSources(_NoSources()), backend=Backend()
        )
        pod = {
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "args": ["$(REDIS_PRIMARY_SERVICE_PORT)"]}]},
        }
        await pipeline(CreatePod(pod=pod))
        env = {e["name"]: e["value"] for e in created[0]["spec"]["containers"][0]["env"]}
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
        assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
        assert env["REDIS_PRIMARY_SERVICE_PORT_REDIS"] == "6379"
        assert env["REDIS_PRIMARY_SERVICE_HOST"] != ""
        assert created[0]["spec"]["containers"][0]["args"] == ["6379"]

        await core.create_namespaced_service(
            "default",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "late"},
                "spec": {"ports": [{"port": 8080}]},
            },
        )
        await eventually(
            lambda: any(s["metadata"]["name"] == "late" for s in services.list_services("default"))
        )
        await pipeline(CreatePod(pod=pod))
        env = {e["name"]: e["value"] for e in created[1]["spec"]["containers"][0]["env"]}
        assert env["LATE_SERVICE_PORT"] == "8080"
        tg.cancel_scope.cancel()


class _NoSources:
    def get_configmap(self, namespace: str, name: str) -> None:
        return None

    def get_secret(self, namespace: str, name: str) -> None:
        return None


async def test_expired_resource_version_lists_again() -> None:
    """A watch resumed after its resourceVersion left the server's history gets 410 → relist."""
    async with embedded_apiserver(history=3, bookmark_interval=0.2) as server:
        api = await server.api_client()
        try:
            sources = WatchedSources(api, secrets=False, timeout_seconds=5)
            cache = sources.configmaps
            rt = server.table.lookup("", "v1", "configmaps")
            assert rt is not None
            server.registry.create(rt, "default", configmap("gone-soon", {"a": "1"}))
            async with anyio.create_task_group() as tg:
                await start(tg, sources.run)
                await eventually(lambda: cache.watches >= 1)
                assert sources.get_configmap("default", "gone-soon") is not None
                # Close the watch and change more than the history holds before it resumes.
                cache.drop_watch()
                server.registry.delete(rt, "default", "gone-soon", {})
                for i in range(6):
                    server.registry.create(rt, "default", configmap(f"cm-{i}", {"i": str(i)}))
                await eventually(lambda: cache.lists >= 2)
                await eventually(lambda: sources.get_configmap("default", "cm-5") is not None)
                assert sources.get_configmap("default", "gone-soon") is None
                assert all(sources.get_configmap("default", f"cm-{i}") for i in range(6))
                assert cache.expirations == 1 and cache.lists == 2
                tg.cancel_scope.cancel()
        finally:
            await api.close()
