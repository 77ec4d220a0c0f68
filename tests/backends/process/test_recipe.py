"""The built-in ``process`` recipe assembles a node around the process backend."""

from __future__ import annotations

from pathlib import Path

from vkcompose.backends.process import ProcessBackend
from vkcompose.ops import CreatePod, Exec, GetStats, ReadLogs
from vkcompose.recipes import RecipeSettings, build_node, builtin_recipes


def test_process_recipe_builds_a_node(tmp_path: Path) -> None:
    assert "process" in builtin_recipes()
    node = build_node("process", RecipeSettings(state_dir=tmp_path, node_name="vk-local"))
    assert node.name == "vk-local"
    assert isinstance(node.backend, ProcessBackend)
    assert node.backend.root == str(tmp_path / "pods")
    assert node.host_network is True
    pipeline = node.pipeline
    for op in (CreatePod, Exec, ReadLogs, GetStats):
        assert pipeline.supports(op)
    assert not list(tmp_path.iterdir())  # nothing is created before the node runs
