"""Write a planned volume atomically, as the kubelet's ``AtomicWriter`` does.

Layout of a volume directory::

    <target>/..2026_01_02_15_04_05.k3j2a/   the real files (a fresh directory per version)
    <target>/..data -> ..2026_01_02_15_04_05.k3j2a
    <target>/game   -> ..data/game          one symlink per top-level entry of the payload

An update writes the new version into a new timestamped directory, then renames a temporary
symlink over ``..data`` (an atomic ``rename(2)``), then removes stale entries and older
version directories (the one just replaced is kept until the next update). A reader resolving
``<target>/game/lives`` therefore sees either the old file or the new one, never a
half-written one. A payload equal to what is on disk (content and mode) writes nothing.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from vkcompose.middlewares.volumes.plan import FileSpec, Ownership, check_path

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"

_RO_MASK = 0o440
_RW_MASK = 0o660
_EXEC_MASK = 0o110


def _expected_mode(spec: FileSpec, owner: Ownership | None) -> int:
    mode = spec.mode
    if owner is not None and owner.gid is not None:
        mode |= _RO_MASK
    return mode


def _needs_write(payload: Mapping[str, FileSpec], old_dir: Path, owner: Ownership | None) -> bool:
    for path, spec in payload.items():
        file = old_dir / path
        try:
            info = file.lstat()
            if not stat.S_ISREG(info.st_mode):
                return True
            if stat.S_IMODE(info.st_mode) != _expected_mode(spec, owner):
                return True
            if file.read_bytes() != spec.data:
                return True
        except (FileNotFoundError, NotADirectoryError):
            return True
    return False


def _existing_paths(old_dir: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(old_dir):
        rel = os.path.relpath(dirpath, old_dir)
        for name in (*dirnames, *filenames):
            found.add(name if rel == "." else posixpath.join(rel, name))
    return found


def _wanted_paths(payload: Mapping[str, FileSpec]) -> set[str]:
    wanted: set[str] = set()
    for path in payload:
        while path:
            wanted.add(path)
            path = posixpath.dirname(path)
    return wanted


def _write_files(payload: Mapping[str, FileSpec], directory: Path) -> None:
    for path, spec in payload.items():
        full = directory / path
        full.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(spec.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, spec.mode)
        finally:
            os.close(fd)


def set_ownership(
    directory: Path,
    owner: Ownership,
    *,
    readonly: bool = True,
    file_owners: Mapping[str, int | None] | None = None,
) -> None:
    """Give ``directory`` (recursively) to ``owner``, a simplified kubelet SetVolumeOwnership.

    Every entry is chowned to ``owner.uid``/``owner.gid`` (``None`` keeps it). With an fsGroup,
    files gain group-read (``readonly``) or group-read-write bits, directories also group
    execute and setgid. ``file_owners`` overrides the user of single files (relative paths).
    """
    uid = -1 if owner.uid is None else owner.uid
    gid = -1 if owner.gid is None else owner.gid
    mask = _RO_MASK if readonly else _RW_MASK
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in (".", *dirnames, *filenames):
            full = os.path.join(dirpath, name) if name != "." else dirpath
            rel = os.path.relpath(full, directory).replace(os.sep, "/")
            file_uid = uid
            if file_owners and file_owners.get(rel) is not None:
                file_uid = file_owners[rel]  # type: ignore[assignment]
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                os.lchown(full, file_uid, gid)
                continue
            os.chown(full, file_uid, gid, follow_symlinks=False)
            if owner.gid is None:
                continue
            bits = mask
            if stat.S_ISDIR(info.st_mode):
                bits |= stat.S_ISGID | _EXEC_MASK
            os.chmod(full, stat.S_IMODE(info.st_mode) | bits)


def write_volume(
    target: Path,
    payload: Mapping[str, FileSpec],
    *,
    owner: Ownership | None = None,
    keep_previous: bool = True,
) -> bool:
    """Atomically make ``target`` hold exactly ``payload``; return whether anything changed.

    ``keep_previous`` keeps the replaced version's directory until the next update, so a reader
    that resolved ``..data`` just before the swap can still open its file; older versions are
    removed. (The kubelet removes the replaced version at once, leaving a short window where
    such a reader gets ``ENOENT``.) ``target`` is created (0755) if missing. ``owner`` (only
    meaningful when running as root) chowns the new version before it becomes visible; without
    it, ``FileSpec.owner`` is ignored too. Not safe for concurrent calls on the same
    ``target``: callers serialize them.
    """
    volume = target.name
    clean = {check_path(volume, path): spec for path, spec in payload.items()}
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    data_link = target / DATA_DIR
    try:
        old_name: str | None = os.readlink(data_link)
    except FileNotFoundError:
        old_name = None
    to_remove: set[str] = set()
    if old_name is not None:
        old_dir = target / old_name
        to_remove = _existing_paths(old_dir) - _wanted_paths(clean)
        if not to_remove and not _needs_write(clean, old_dir, owner):
            return False

    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    try:
        os.chmod(new_dir, 0o755)
        _write_files(clean, new_dir)
        if owner:
            set_ownership(new_dir, owner, file_owners={p: s.owner for p, s in clean.items()})
        for top in {path.split("/", 1)[0] for path in clean}:
            visible = target / top
            if not os.path.lexists(visible):
                os.symlink(posixpath.join(DATA_DIR, top), visible)
        tmp_link = target / NEW_DATA_DIR
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(new_dir.name, tmp_link)
        os.replace(tmp_link, data_link)
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    for path in to_remove:
        if "/" not in path:
            visible = target / path
            if os.path.islink(visible):
                os.unlink(visible)
    keep = {DATA_DIR, NEW_DATA_DIR, new_dir.name}
    if keep_previous and old_name is not None:
        keep.add(old_name)
    for entry in os.listdir(target):
        if entry.startswith("..") and entry not in keep:
            shutil.rmtree(target / entry, ignore_errors=True)
    return True


def read_volume(target: Path) -> dict[str, bytes]:
    """The files ``target`` currently shows, read through ``..data`` (for tests and tools)."""
    data_dir = target / DATA_DIR
    result: dict[str, bytes] = {}
    for path in sorted(_existing_paths(data_dir)):
        full = data_dir / path
        if full.is_file():
            result[path] = full.read_bytes()
    return result


__all__ = ["DATA_DIR", "read_volume", "set_ownership", "write_volume"]
