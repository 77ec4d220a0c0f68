"""Service account tokens for ``serviceAccountToken`` projections.

A :class:`TokenSource` issues a token bound to a pod; :class:`KubeTokenSource` asks the API
server through the TokenRequest API (``POST .../serviceaccounts/<name>/token``).
:class:`TokenCache` keeps issued tokens and renews one once 80 % of its lifetime has passed, as
the kubelet's token manager does. Tokens are secrets: nothing here logs them or puts them in
an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import orjson

from vkcompose.errors import TemporaryError
from vkcompose.podspec import Pod

REFRESH_FRACTION = 0.8
"""Renew a token once this fraction of its lifetime has passed (kubelet: within 20 % of expiry)."""
MAX_TOKEN_AGE = 24 * 3600
"""Seconds: a token is renewed once this old, however long it lives (as the kubelet does)."""


class TokenSource(Protocol):
    """Issues service account tokens bound to a pod."""

    async def token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        expiration_seconds: int,
        pod: Pod,
        /,
    ) -> str:
        """Return a token for ``service_account`` valid for ``audience`` (``""``: the API's)."""
        ...


def _status_message(body: bytes, status: int) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"HTTP {status}"
    message = parsed.get("message") if isinstance(parsed, dict) else None
    return str(message) if message else f"HTTP {status}"


def token_request(pod: Pod, audience: str, expiration_seconds: int) -> dict[str, Any]:
    """The TokenRequest a kubelet sends for a token bound to ``pod`` (``""``: default audience).

    >>> token_request({"metadata": {"name": "web", "uid": "u"}}, "", 600)["spec"]["audiences"]
    []
    """
    meta = pod.get("metadata") or {}
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience] if audience else [],
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name") or "",
                "uid": meta.get("uid") or "",
            },
        },
    }


class KubeTokenSource:
    """A :class:`TokenSource` using the TokenRequest API through kubernetes_asyncio.

    ``api_client`` is a ``kubernetes_asyncio.client.ApiClient``; responses are read as raw JSON.
    The token is bound to the pod (``boundObjectRef``), as the kubelet requests it.
    """

    def __init__(self, api_client: Any) -> None:
        from kubernetes_asyncio import client

        self._core: Any = client.CoreV1Api(api_client)

    async def token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        expiration_seconds: int,
        pod: Pod,
        /,
    ) -> str:
        """Request a token; raise :class:`TemporaryError` with the API's message on failure."""
        body = token_request(pod, audience, expiration_seconds)
        response = await self._core.create_namespaced_service_account_token(
            service_account, namespace, body, _preload_content=False
        )
        try:
            raw = await response.read()
        finally:
            response.release()
        if not 200 <= response.status <= 299:
            raise TemporaryError(
                f"failed to fetch token: {_status_message(raw, response.status)}",
                reason="FailedMount",
            )
        token = (orjson.loads(raw).get("status") or {}).get("token")
        if not token:
            raise TemporaryError("failed to fetch token: empty TokenRequest status")
        return str(token)


@attrs.frozen(slots=True)
class _Issued:
    token: str = attrs.field(repr=False)
    issued_at: float
    lifetime: int

    def refresh_at(self) -> float:
        return self.issued_at + min(REFRESH_FRACTION * self.lifetime, MAX_TOKEN_AGE)

    def stale(self, now: float) -> bool:
        return now >= self.refresh_at()


TokenKey = tuple[str, str, str, int, str]
"""``(namespace, service_account, audience, expiration_seconds, pod uid)``."""


class TokenCache:
    """Tokens issued per (namespace, service account, audience, lifetime, pod uid).

    :meth:`get` returns the cached token until 80 % of its lifetime or 24 hours have passed,
    whichever comes first (the kubelet's rule), then asks the source again.
    ``clock`` is a monotonic time function (seconds).
    """

    def __init__(self, source: TokenSource, *, clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.clock = clock
        self._issued: dict[TokenKey, _Issued] = {}

    async def get(
        self,
        pod: Pod,
        audience: str,
        expiration_seconds: int,
    ) -> str:
        """A valid token for ``pod``'s service account; renewed when stale."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        namespace = meta.get("namespace") or ""
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        key = (namespace, account, audience, expiration_seconds, meta.get("uid") or "")
        issued = self._issued.get(key)
        now = self.clock()
        if issued is None or issued.stale(now):
            token = await self.source.token(namespace, account, audience, expiration_seconds, pod)
            issued = _Issued(token, now, expiration_seconds)
            self._issued[key] = issued
        return issued.token

    def next_refresh(self) -> float | None:
        """The clock time at which the earliest cached token becomes stale (``None``: none)."""
        return min((i.refresh_at() for i in self._issued.values()), default=None)

    def forget(self, uid: str) -> None:
        """Drop the tokens of the pod with ``uid``."""
        for key in [k for k in self._issued if k[4] == uid]:
            del self._issued[key]


__all__ = ["MAX_TOKEN_AGE", "REFRESH_FRACTION", "KubeTokenSource", "TokenCache", "TokenSource"]
