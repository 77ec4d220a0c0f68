"""Secret values never leak: not into logs, Events, pod statuses or error messages.

A node runs the memory recipe (the full middleware stack, LogOps at DEBUG) against the
embedded API server. Pods consume a Secret through ``secretKeyRef`` and ``envFrom``; one of
them also fails to start (a missing key, then a backend failure). Everything emitted is then
searched for the secret value and its base64 form.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from kubernetes_asyncio import client

from vkcompose.recipes import RecipeSettings, build_node
from vkcompose.serve import free_kubelet_port, local_cluster

pytestmark = pytest.mark.anyio

SECRET = "Tr0ub4dor-and-3-horses"


def pod(name: str, *, key: str = "password", annotations: dict[str, str] | None = None) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "env": [
                        {"name": "PASSWORD",
                         "valueFrom": {"secretKeyRef": {"name": "creds", "key": key}}},
                        {"name": "DSN", "value": "postgres://app:$(PASSWORD)@db"},
                    ],
                    "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "S_"}],
                }
            ],
        },
    }  # fmt: skip


class _Quiet:
    def print(self, *args: object) -> None:
        """Discard."""


async def test_secret_values_appear_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node = build_node("memory", RecipeSettings(state_dir=tmp_path))
    node.kubelet_port = 0
    free_kubelet_port(node, _Quiet())  # type: ignore[arg-type]
    async with local_cluster(node) as server:
        api = await server.api_client()
        core = client.CoreV1Api(api)
        try:
            encoded = base64.b64encode(SECRET.encode()).decode()
            await core.create_namespaced_secret(
                "default", {"metadata": {"name": "creds"}, "data": {"password": encoded}}
            )
            await core.create_namespaced_pod("default", pod("ok"))
            await core.create_namespaced_pod("default", pod("missing-key", key="nope"))
            await core.create_namespaced_pod(
                "default",
                pod("backend-fails",
                    annotations={"sim.vkcompose.io/fail-create": "quota exceeded"}),
            )  # fmt: skip

            async def settled() -> bool:
                pods = {
                    p.metadata.name: p for p in (await core.list_namespaced_pod("default")).items
                }
                ok = pods["ok"].status.phase == "Running"
                waiting = [
                    (s.state.waiting.reason if s.state and s.state.waiting else None)
                    for s in pods["missing-key"].status.container_statuses or []
                ]
                failed = pods["backend-fails"].status.reason == "ProviderFailed"
                return ok and waiting == ["CreateContainerConfigError"] and failed

            with anyio.fail_after(30):
                while not await settled():  # noqa: ASYNC110 - polling the API, not an event
                    await anyio.sleep(0.1)
            # kubernetes_asyncio's REST logger prints whole response bodies at DEBUG — this
            # test's own client creating the Secret included; vkcompose reads raw bodies
            # (no preload), so its records are this test's, and the CLI caps that logger.
            ours = [r for r in caplog.records if r.name != "kubernetes_asyncio.client.rest"]
            emitted: list[str] = [record.getMessage() for record in ours]
            emitted += [str(r.exc_info) for r in ours if r.exc_info]
            for kind in ("pods", "events"):
                response = await api.call_api(
                    f"/api/v1/namespaces/default/{kind}", "GET",
                    auth_settings=["BearerToken"], _preload_content=False,
                )  # fmt: skip
                body = response[0] if isinstance(response, tuple) else response
                emitted.append((await body.read()).decode())
            everything = "\n".join(emitted)
            assert "CreateContainerConfigError" in everything  # the search covers real output
            assert "couldn't find key nope in Secret default/creds" in everything
            assert "quota exceeded" in everything
            assert SECRET not in everything
            assert encoded not in everything
            events = orjson.loads(emitted[-1])["items"]
            assert any(e["reason"] == "ProviderFailed" for e in events)
        finally:
            await api.close()
