"""Images → host commands: what a container runs when images are not pulled.

The process backend never pulls images. A container runs its ``command`` + ``args`` (exec form)
on the host. When it has no ``command``, the image's *entrypoint* and default *cmd* come from an
:class:`ImageMap`, following the Kubernetes rules:

* ``command`` given → ``command + args`` (the image is ignored);
* no ``command`` → ``entrypoint + (args if args else cmd)``;
* no ``command`` and no mapping → the container cannot run (waiting reason
  ``ImageUnsupported``).

Images match on their repository (registry ``docker.io``/``library/`` prefixes, tag and digest
dropped), with shell-style wildcards:

>>> images = ImageMap({"python": ImageEntry(entrypoint=("python3",), cmd=("-i",))})
>>> images.command({"image": "docker.io/library/python:3.12-slim", "args": ["-V"]})
['python3', '-V']
>>> images.command({"image": "python"})
['python3', '-i']
>>> images.command({"image": "python", "command": ["echo"], "args": ["hi"]})
['echo', 'hi']
>>> images.command({"image": "nginx"}) is None
True
>>> normalize_image("registry.example.com:5000/team/app@sha256:abc")
'registry.example.com:5000/team/app'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen
class ImageEntry:
    """What an image would run: its ``ENTRYPOINT`` and ``CMD`` as host commands."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


DEFAULT_IMAGES: Mapping[str, ImageEntry] = {
    "busybox": ImageEntry(cmd=("sh",)),
    "alpine": ImageEntry(cmd=("/bin/sh",)),
    "debian": ImageEntry(cmd=("bash",)),
    "ubuntu": ImageEntry(cmd=("bash",)),
    "python": ImageEntry(cmd=("python3",)),
    "registry.k8s.io/pause": ImageEntry(entrypoint=("sleep", "infinity")),
}
"""Images whose defaults are plain host tools (a shell, Python, ``sleep``)."""


def normalize_image(image: str) -> str:
    """The repository part of an image reference, without ``docker.io/library/``, tag, digest."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name = name[:colon]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name


@attrs.frozen
class ImageMap:
    """Image patterns (``fnmatch`` on the normalized repository) → :class:`ImageEntry`.

    ``accept_any`` makes an unmapped image behave like an image with an empty entrypoint
    and cmd: fine when every container gives a ``command``.
    """

    entries: Mapping[str, ImageEntry] = attrs.field(factory=lambda: dict(DEFAULT_IMAGES))

    def lookup(self, image: str) -> ImageEntry | None:
        """The entry for ``image``: exact repository match first, then the first pattern."""
        name = normalize_image(image)
        if name in self.entries:
            return self.entries[name]
        for pattern, entry in self.entries.items():
            if fnmatch.fnmatchcase(name, pattern):
                return entry
        return None

    def command(self, container: Mapping[str, Any]) -> list[str] | None:
        """The argv to run for ``container``, or ``None`` when the image cannot be mapped."""
        command: Sequence[str] = container.get("command") or ()
        args: Sequence[str] = container.get("args") or ()
        if command:
            return [*command, *args]
        entry = self.lookup(str(container.get("image") or ""))
        if entry is None:
            return None
        argv = [*entry.entrypoint, *(args if args else entry.cmd)]
        return argv or None


__all__ = ["DEFAULT_IMAGES", "ImageEntry", "ImageMap", "normalize_image"]
