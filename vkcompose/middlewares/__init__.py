"""Reusable middlewares: each module exposes a pure core first, then a thin adapter."""

from vkcompose.middlewares.config_sources import ResolveConfigSources
from vkcompose.middlewares.downward_api import DownwardAPI
from vkcompose.middlewares.service_links import ServiceLinks

__all__ = ["DownwardAPI", "ResolveConfigSources", "ServiceLinks"]
