"""pytest plugin (auto-loaded through the ``pytest11`` entry point) exposing vkcompose fixtures."""

from vkcompose.testing.clock import *  # noqa: F403
from vkcompose.testing.cluster import *  # noqa: F403
from vkcompose.testing.kubelet import *  # noqa: F403
