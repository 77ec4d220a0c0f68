"""Recipes: plain Python files that assemble node settings, middlewares and a backend.

A recipe is a module with a function ``recipe(settings: RecipeSettings) -> VirtualNode``.
Built-in recipes live in this package and load by name; your own load by path::

    vkcompose run memory
    vkcompose run ./my_recipe.py

>>> sorted(builtin_recipes())[:1]
['memory']
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import attrs

from vkcompose.node.settings import VirtualNode


@attrs.frozen(kw_only=True)
class RecipeSettings:
    """What the command line (or a test) tells a recipe.

    ``node_name`` and ``replicas`` override the recipe's own choices when set; ``state_dir`` is
    where backends keep state that must survive restarts.
    """

    node_name: str | None = None
    replicas: int | None = None
    state_dir: Path = attrs.field(factory=lambda: Path(".vkcompose"))
    internal_ip: str = "127.0.0.1"
    kubelet_port: int | None = None


Recipe = Callable[[RecipeSettings], VirtualNode]
"""The signature of a recipe function."""


class RecipeError(Exception):
    """A recipe could not be found, imported or run; the message says which and why."""


def _builtin_names() -> set[str]:
    return {i.name for i in pkgutil.iter_modules(__path__) if not i.name.startswith("_")}


def builtin_recipes() -> dict[str, str]:
    """Built-in recipe names and their one-line descriptions."""
    found: dict[str, str] = {}
    for name in sorted(_builtin_names()):
        module = importlib.import_module(f"{__name__}.{name}")
        doc = (module.__doc__ or "").strip().splitlines()
        found[name] = doc[0] if doc else ""
    return found


def _import_path(path: Path) -> ModuleType:
    if not path.is_file():
        raise RecipeError(f"recipe file {path} does not exist")
    name = f"vkcompose_recipe_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RecipeError(f"recipe file {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise RecipeError(f"recipe file {path} failed to import: {error!r}") from error
    return module


def load_recipe(ref: str) -> Recipe:
    """The ``recipe`` function of a built-in recipe (by name) or of a Python file (by path)."""
    looks_like_path = ref.endswith(".py") or "/" in ref or "\\" in ref
    if looks_like_path:
        module = _import_path(Path(ref))
    else:
        names = _builtin_names()
        if ref not in names:
            known = ", ".join(sorted(names))
            raise RecipeError(f"no built-in recipe named {ref!r} (built-in recipes: {known})")
        module = importlib.import_module(f"{__name__}.{ref}")
    function = getattr(module, "recipe", None)
    if not callable(function):
        raise RecipeError(f"recipe {ref} has no function recipe(settings) -> VirtualNode")
    return function  # type: ignore[no-any-return]


def build_node(ref: str, settings: RecipeSettings) -> VirtualNode:
    """Load recipe ``ref`` and run it with ``settings``, applying the overrides it carries."""
    recipe = load_recipe(ref)
    try:
        node = recipe(settings)
    except RecipeError:
        raise
    except Exception as error:
        raise RecipeError(f"recipe {ref} failed: {error!r}") from error
    if not isinstance(node, VirtualNode):
        raise RecipeError(f"recipe {ref} returned {type(node).__name__}, not a VirtualNode")
    if settings.node_name:
        node.name = settings.node_name
    if settings.replicas:
        node.replicas = settings.replicas
    if settings.kubelet_port is not None:
        node.kubelet_port = settings.kubelet_port
    return node


__all__ = [
    "Recipe",
    "RecipeError",
    "RecipeSettings",
    "build_node",
    "builtin_recipes",
    "load_recipe",
]
