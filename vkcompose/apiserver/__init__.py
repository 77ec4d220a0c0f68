"""Embedded Kubernetes-compatible API server (aiohttp) used by kubectl and kubernetes_asyncio."""

from vkcompose.apiserver.server import APIServer, embedded_apiserver, serve_forever

__all__ = ["APIServer", "embedded_apiserver", "serve_forever"]
