"""Process backend: pods as real local processes (see ``docs/process-backend.md``)."""

from vkcompose.backends.process.backend import ProcessBackend
from vkcompose.backends.process.images import DEFAULT_IMAGES, ImageEntry, ImageMap

__all__ = ["DEFAULT_IMAGES", "ImageEntry", "ImageMap", "ProcessBackend"]
