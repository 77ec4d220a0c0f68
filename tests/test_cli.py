"""The command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vkcompose._version import __version__


def vkcompose(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vkcompose.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.mark.parametrize("command", [[], ["run"], ["up"], ["recipes"], ["apiserver"], ["version"]])
def test_help_everywhere(command: list[str]) -> None:
    result = vkcompose(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_version() -> None:
    assert vkcompose("version").stdout.strip() == f"vkcompose {__version__}"


def test_recipes_lists_builtins() -> None:
    result = vkcompose("recipes")
    assert result.returncode == 0, result.stderr
    assert "memory" in result.stdout


def test_missing_recipe_file_is_a_clean_error(tmp_path: Path) -> None:
    result = vkcompose("run", str(tmp_path / "nope.py"))
    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_recipe_file_is_a_clean_error_with_traceback_on_debug(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def recipe(settings):\n    return 1 / 0\n")
    result = vkcompose("run", str(broken))
    assert result.returncode != 0
    assert "ZeroDivisionError" in result.stderr and "Traceback" not in result.stderr
    debug = vkcompose("--debug", "run", str(broken))
    assert "Traceback" in debug.stderr


def test_recipe_without_recipe_function(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    result = vkcompose("run", str(empty))
    assert "has no function recipe" in result.stderr


def test_syntax_error_in_recipe(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def recipe(:\n")
    result = vkcompose("run", str(bad))
    assert result.returncode != 0 and "failed to import" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_builtin_recipe() -> None:
    result = vkcompose("run", "no-such-recipe")
    assert result.returncode != 0
    assert "no built-in recipe named 'no-such-recipe'" in result.stderr
