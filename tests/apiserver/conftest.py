"""Shared fixtures for API-server tests: a kubernetes_asyncio client and a raw HTTP session."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from vkcompose.apiserver import APIServer


@pytest.fixture
async def api(apiserver: APIServer) -> AsyncIterator[Any]:
    """A kubernetes_asyncio ApiClient configured from the server's kubeconfig."""
    client = await apiserver.api_client()
    try:
        yield client
    finally:
        await client.close()


class Raw:
    """Minimal raw HTTP access (for bodies no typed client would send)."""

    def __init__(self, server: APIServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send one request; returns (status, parsed JSON body or text)."""
        hdrs = {"Content-Type": content_type, **(headers or {})}
        tok = self.server.admin_token if token is None else token
        if tok:
            hdrs["Authorization"] = f"Bearer {tok}"
        data = body if isinstance(body, bytes | None) else orjson.dumps(body)
        async with self.session.request(
            method, self.server.url + path, data=data, headers=hdrs
        ) as resp:
            raw = await resp.read()
            try:
                return resp.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return resp.status, raw.decode()


def ssl_context(server: APIServer) -> ssl.SSLContext | bool:
    """A client SSL context trusting the server's CA (no client certificate)."""
    if server.ca_path is None:
        return False
    return ssl.create_default_context(cafile=str(server.ca_path))


@pytest.fixture
async def raw(apiserver: APIServer) -> AsyncIterator[Raw]:
    """A :class:`Raw` HTTP helper authenticated with the admin bearer token."""
    connector = aiohttp.TCPConnector(ssl=ssl_context(apiserver))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Raw(apiserver, session)
