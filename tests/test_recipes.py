"""Recipe loading by name and by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.settings import VirtualNode
from vkcompose.recipes import RecipeError, RecipeSettings, build_node, load_recipe


def test_builtin_memory_recipe() -> None:
    node = build_node("memory", RecipeSettings())
    assert isinstance(node.backend, MemoryBackend)
    assert node.effective_taints() == [
        {"key": "virtual-kubelet.io/provider", "value": "vk-memory", "effect": "NoSchedule"}
    ]


def test_recipe_by_path_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "from vkcompose.node.settings import VirtualNode\n"
        "from vkcompose.backends.memory import MemoryBackend\n"
        "def recipe(settings):\n"
        "    return VirtualNode(name='mine', backend=MemoryBackend(), taints=[])\n"
    )
    node = build_node(str(path), RecipeSettings(node_name="renamed", replicas=3))
    assert node.node_names() == ["renamed-0", "renamed-1", "renamed-2"]
    assert node.effective_taints() == []


def test_recipe_must_return_a_virtual_node(tmp_path: Path) -> None:
    path = tmp_path / "wrong.py"
    path.write_text("def recipe(settings):\n    return 'node'\n")
    with pytest.raises(RecipeError, match="not a VirtualNode"):
        build_node(str(path), RecipeSettings())


def test_load_recipe_returns_the_function() -> None:
    recipe = load_recipe("memory")
    assert isinstance(recipe(RecipeSettings()), VirtualNode)


def test_the_standard_stack_is_in_the_documented_order(tmp_path: Path) -> None:
    from vkcompose.recipes import _stack

    names = [type(m).__name__ for m in _stack.standard_middlewares()]
    assert names == [
        "Redaction",
        "Metrics",
        "LogOps",
        "Tracing",
        "Retry",
        "Timeout",
        "ContainerEnv",
        "LearnSecrets",
    ]
    with_volumes = [type(m).__name__ for m in _stack.standard_middlewares(volumes_root=tmp_path)]
    assert with_volumes == [*names[:-1], "Volumes", "LearnSecrets"]
    # the module's docstring lists the same order
    doc = _stack.__doc__ or ""
    positions = [doc.index(f"``{name}``") for name in [*names[:-1], "Volumes"]]
    assert positions == sorted(positions)
