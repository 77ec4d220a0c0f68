"""A server that refuses strategic-merge patches gets merge patches without the directives."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from kubernetes_asyncio import client as k8s_client

from vkcompose.node.kube import MERGE_PATCH, STRATEGIC_PATCH, Kube

pytestmark = pytest.mark.anyio


async def test_415_switches_status_patches_to_merge_patches() -> None:
    seen: list[tuple[str, Any]] = []

    async def patch(request: web.Request) -> web.Response:
        ctype = request.content_type
        seen.append((ctype, orjson.loads(await request.read())))
        if ctype == STRATEGIC_PATCH:
            return web.json_response({"kind": "Status", "code": 415}, status=415)
        return web.json_response({"kind": "Pod", "metadata": {"name": "p"}})

    app = web.Application()
    app.router.add_patch("/api/v1/namespaces/default/pods/p/status", patch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cfg = k8s_client.Configuration(host=f"http://127.0.0.1:{port}")
    kube = Kube(k8s_client.ApiClient(configuration=cfg), owned=True)
    body = {"status": {"podIPs": [{"$patch": "replace"}, {"ip": "10.0.0.2"}]}}
    try:
        path = "/api/v1/namespaces/default/pods/p/status"
        assert (await kube.patch_status(path, body))["kind"] == "Pod"
        assert kube.strategic_status_patch is False
        assert await kube.patch_status(path, body, decode=False) is None
    finally:
        await kube.close()
        await runner.cleanup()
    merged = {"status": {"podIPs": [{"ip": "10.0.0.2"}]}}
    assert seen == [(STRATEGIC_PATCH, body), (MERGE_PATCH, merged), (MERGE_PATCH, merged)]
