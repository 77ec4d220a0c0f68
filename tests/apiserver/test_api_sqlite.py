"""SQLite storage: objects and resourceVersion continuity survive a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from vkcompose.apiserver import embedded_apiserver
from vkcompose.apiserver.storage import SQLiteStorage

pytestmark = pytest.mark.anyio


async def test_restart_keeps_objects_and_resource_versions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with embedded_apiserver(data, storage="sqlite") as server:
        api = await server.api_client()
        try:
            v1 = client.CoreV1Api(api)
            cm: Any = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "keep"},
                "data": {"a": "1"},
            }
            created = await v1.create_namespaced_config_map("default", cm)
            await v1.create_namespaced_config_map(
                "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone"}}
            )
            await v1.delete_namespaced_config_map("gone", "default")
            last = int((await v1.list_namespaced_config_map("default")).metadata.resource_version)
        finally:
            await api.close()
    async with embedded_apiserver(data, storage="sqlite") as server:
        api = await server.api_client()
        try:
            v1 = client.CoreV1Api(api)
            got = await v1.read_namespaced_config_map("keep", "default")
            assert got.data == {"a": "1"}
            assert got.metadata.uid == created.metadata.uid
            assert got.metadata.resource_version == created.metadata.resource_version
            names = {
                i.metadata.name for i in (await v1.list_namespaced_config_map("default")).items
            }
            assert "gone" not in names
            # bootstrap objects are not duplicated; the default namespace keeps its uid
            assert len((await v1.list_namespace()).items) == 4
            upd = await v1.patch_namespaced_config_map("keep", "default", {"data": {"a": "2"}})
            assert int(upd.metadata.resource_version) > last
        finally:
            await api.close()


def test_sqlite_storage_commits_each_write(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStorage(db)
    store.put("configmaps", "default", "a", {"metadata": {"name": "a"}})
    store.put("configmaps", "default", "b", {"metadata": {"name": "b"}})
    store.delete("configmaps", "default", "a")
    # a second connection (another process after a crash) sees every acknowledged write
    other = SQLiteStorage(db)
    assert [s.obj["metadata"]["name"] for s in other.list("configmaps")] == ["b"]
    assert other.revision() == 3
    assert other.get("configmaps", "default", "b") is not None
    other.close()
    store.close()
