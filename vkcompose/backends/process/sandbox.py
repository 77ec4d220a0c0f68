"""The container's view: isolation mode, mounts, environment, identity.

Pure helpers (no process is started here) that turn a pod + container + the volumes
middleware's ``volume_paths`` into what the shim needs:

* :func:`container_mounts` — each ``volumeMount`` as a host source and a container target,
  with ``subPath``/``subPathExpr`` resolved and path traversal rejected;
* :func:`container_env` — the env list as a dict (a remaining ``valueFrom``/``envFrom`` is a
  configuration error: the pipeline should have resolved it);
* :func:`expand` — Kubernetes ``$(VAR)`` expansion of command and args;
* :func:`detect_isolation` — which isolation this host allows.

>>> expand("$(GREETING) $$(HOME) $(MISSING)", {"GREETING": "hi"})
'hi $(HOME) $(MISSING)'
>>> safe_join("/vol", "a/b.txt")
'/vol/a/b.txt'
>>> safe_join("/vol", "../etc/passwd")
Traceback (most recent call last):
...
vkcompose.errors.InvalidInput: subPath '../etc/passwd' must be a relative path without '..'
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from vkcompose.errors import InvalidInput
from vkcompose.podspec.expansion import expand

CONFIG_ERROR = "CreateContainerConfigError"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Set when the container's env has no ``PATH`` (as an image config would)."""

ISOLATION_MODES = ("auto", "namespaces", "bwrap", "none")


@attrs.frozen
class Mount:
    """A host path shown at ``target`` inside the container's view."""

    source: str
    target: str
    read_only: bool = False

    def to_json(self) -> dict[str, Any]:
        """The shim's representation."""
        return {"source": self.source, "target": self.target, "readOnly": self.read_only}


def safe_join(base: str, sub_path: str) -> str:
    """``base/sub_path``, refusing absolute paths and any ``..`` component."""
    parts = sub_path.split("/")
    if sub_path.startswith("/") or ".." in parts:
        raise InvalidInput(
            f"subPath {sub_path!r} must be a relative path without '..'", reason=CONFIG_ERROR
        )
    joined = os.path.normpath(os.path.join(base, sub_path))
    return joined


def check_within(base: str, path: str, what: str) -> str:
    """Resolve symlinks in ``path`` and make sure it stays inside ``base``."""
    real_base = os.path.realpath(base)
    real = os.path.realpath(path)
    if real != real_base and not real.startswith(real_base + os.sep):
        raise InvalidInput(f"{what} escapes its volume", reason=CONFIG_ERROR)
    return real


def container_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], *, expand_vars: bool = True
) -> dict[str, str]:
    """The container's environment: ``env`` as given, plus ``PATH``/``HOSTNAME`` defaults.

    ``valueFrom`` and ``envFrom`` must have been resolved by the pipeline; if one remains the
    container cannot be configured (``CreateContainerConfigError``). Values are never put in
    error messages. ``expand_vars`` expands ``$(VAR)`` in values (off when the pipeline's
    config-sources middleware already did).
    """
    if container.get("envFrom"):
        raise InvalidInput(
            f"container {container.get('name')!r}: envFrom was not resolved by the pipeline",
            reason=CONFIG_ERROR,
        )
    env: dict[str, str] = {}
    name = (pod.get("metadata") or {}).get("name") or ""
    env["HOSTNAME"] = name
    for item in container.get("env") or []:
        key = item.get("name")
        if not key:
            continue
        if "valueFrom" in item and "value" not in item:
            raise InvalidInput(
                f"container {container.get('name')!r}: env {key!r} has an unresolved valueFrom",
                reason=CONFIG_ERROR,
            )
        value = str(item.get("value") or "")
        env[key] = expand(value, env) if expand_vars else value
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def container_mounts(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    volume_paths: Mapping[str, str],
    env: Mapping[str, str],
    own_volume: Callable[[str, Mapping[str, Any]], str | None],
) -> list[Mount]:
    """The container's ``volumeMounts`` as host sources and container targets.

    A volume missing from ``volume_paths`` falls back to ``own_volume(name, volume)`` (the
    backend provides ``emptyDir`` and ``hostPath`` itself); if that returns ``None`` the
    container cannot be configured.
    """
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        vname = vm.get("name") or ""
        target = vm.get("mountPath") or ""
        if not target.startswith("/"):
            raise InvalidInput(f"mountPath {target!r} must be absolute", reason=CONFIG_ERROR)
        if ".." in target.split("/"):
            raise InvalidInput(f"mountPath {target!r} must not contain '..'", reason=CONFIG_ERROR)
        source = volume_paths.get(vname)
        if source is None:
            source = own_volume(vname, volumes.get(vname) or {})
        if source is None:
            raise InvalidInput(
                f"volume {vname!r} of mount {target!r} was not materialized", reason=CONFIG_ERROR
            )
        sub = vm.get("subPath") or ""
        if not sub and vm.get("subPathExpr"):
            sub = _expand_sub_path(str(vm["subPathExpr"]), env)
        if sub:
            path = safe_join(source, sub)
            if not os.path.lexists(path):
                os.makedirs(path, exist_ok=True)
            source = check_within(source, path, f"subPath {sub!r}")
        mounts.append(Mount(source, target, bool(vm.get("readOnly"))))
    return mounts


def _expand_sub_path(expr: str, env: Mapping[str, str]) -> str:
    """``subPathExpr`` with its ``$(VAR)`` references expanded; as the kubelet, a variable
    that is not set (or empty) fails the container's configuration.

    >>> _expand_sub_path("logs/$(POD)", {"POD": "web"})
    'logs/web'
    """
    missing: set[str] = set()

    def lookup(name: str) -> str | None:
        value = env.get(name)
        if not value:
            missing.add(name)
        return value

    expanded = expand(expr, lookup)
    if missing:
        raise InvalidInput(f"missing value for {', '.join(sorted(missing))}", reason=CONFIG_ERROR)
    return expanded


def can_use_namespaces() -> bool:
    """Root with mount namespaces and overlayfs available."""
    if os.geteuid() != 0 or not os.path.exists("/proc/self/ns/mnt"):
        return False
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


def bwrap_problem(bwrap: str = "bwrap") -> str:
    """Why bubblewrap cannot build a container view here (``""`` when it can).

    A real probe: runs ``bwrap`` with the namespaces the backend uses (and a user namespace
    when not root) around ``true``.
    """
    path = shutil.which(bwrap)
    if path is None:
        return f"{bwrap} not found (Debian package bubblewrap)"
    argv = [path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--unshare-pid", "--unshare-uts", "--unshare-ipc"]
    if os.geteuid() != 0:
        argv.append("--unshare-user")
    argv += ["--", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap failed: {e}"
    if done.returncode != 0:
        return "bwrap failed: " + done.stderr.decode(errors="replace").strip()[:200]
    return ""


def detect_isolation(requested: str = "auto", bwrap: str = "bwrap") -> tuple[str, str]:
    """``(mode, warning)``: the isolation to use and, when degraded, why.

    ``auto``: ``namespaces`` when root, else ``bwrap`` when bubblewrap works, else ``none``.
    """
    if requested not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {ISOLATION_MODES}")
    if requested == "none":
        return "none", ""
    if requested == "bwrap":
        problem = bwrap_problem(bwrap)
        if problem:
            raise RuntimeError(f"bwrap isolation unavailable: {problem}")
        return "bwrap", ""
    if can_use_namespaces():
        return "namespaces", ""
    why = "not running as root" if os.geteuid() != 0 else "no mount namespace or overlayfs"
    if requested == "namespaces":
        raise RuntimeError(f"namespace isolation unavailable: {why}")
    problem = bwrap_problem(bwrap)
    if not problem:
        return "bwrap", ""
    why = f"{why}; {problem}"
    return "none", (
        f"no isolation ({why}): containers see the host filesystem, volumes are not mounted "
        "at their mountPath, /tmp and the hostname are shared with the host"
    )


def run_as(pod: Mapping[str, Any], container: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """``(uid, gid)`` from the container's, else the pod's, ``securityContext``."""
    csc = container.get("securityContext") or {}
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    return (int(uid) if uid is not None else None, int(gid) if gid is not None else None)


def supplemental_groups(pod: Mapping[str, Any]) -> list[int]:
    """``spec.securityContext.supplementalGroups`` (+ ``fsGroup``)."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    groups = [int(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        groups.append(int(psc["fsGroup"]))
    return groups


__all__ = [
    "CONFIG_ERROR",
    "DEFAULT_PATH",
    "Mount",
    "bwrap_problem",
    "can_use_namespaces",
    "check_within",
    "container_env",
    "container_mounts",
    "detect_isolation",
    "expand",
    "run_as",
    "safe_join",
    "supplemental_groups",
]
