"""Authentication and authorization of kubelet API requests, as the kubelet delegates them.

* **Authentication**: a client certificate verified against the client CA (by TLS; CN is the
  user, each O a group), else a bearer token checked with a ``TokenReview``
  (``authentication.k8s.io/v1``) at the API server. No credentials → 401, unless
  ``insecure_allow_anonymous`` is set: then such requests are served as ``system:anonymous``
  without authorization (a warning is logged when the option is enabled).
* **Authorization**: a ``SubjectAccessReview`` (``authorization.k8s.io/v1``) on resource
  ``nodes``, name = the node, subresource from the path (``/stats`` → ``stats``, ``/metrics`` →
  ``metrics``, ``/logs`` → ``log``, everything else — exec, attach, port-forward, container
  logs, pods — ``proxy``), verb from the method (GET/HEAD get, POST create, PUT update, PATCH
  patch, DELETE delete). Denied → 403.
* Results are cached as the kubelet's defaults: tokens 2 min (failures 10 s), allowed
  decisions 5 min, denied 30 s. Tokens are cached by their SHA-256, never logged.

>>> subresource_for("/stats/summary"), subresource_for("/containerLogs/a/b/c")
('stats', 'proxy')
>>> verb_for("POST")
'create'
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import attrs
from aiohttp import web

__all__ = [
    "ANONYMOUS",
    "AuthResult",
    "KubeletAuth",
    "ReviewClient",
    "User",
    "subresource_for",
    "user_from_peercert",
    "verb_for",
]

log = logging.getLogger(__name__)

TOKEN_REVIEW_PATH: Final = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEW_PATH: Final = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


@attrs.frozen
class User:
    """An authenticated identity."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


ANONYMOUS: Final = User("system:anonymous", ("system:unauthenticated",))


class ReviewClient(Protocol):
    """What the auth needs from an API client: POST a JSON object, get the JSON answer."""

    async def create(self, path: str, obj: Any, /) -> Any:
        """Create ``obj`` at ``path`` and return the server's answer."""
        ...


def user_from_peercert(cert: Mapping[str, Any] | None) -> User | None:
    """The identity of a TLS-verified client certificate: CN is the user, each O a group."""
    if not cert:
        return None
    name = ""
    groups: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    if not name:
        return None
    return User(name, (*groups, "system:authenticated"))


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


def subresource_for(path: str) -> str:
    """The ``nodes`` subresource a kubelet path is authorized as."""
    if _is_subpath(path, "/stats"):
        return "stats"
    if _is_subpath(path, "/metrics"):
        return "metrics"
    if _is_subpath(path, "/logs"):
        return "log"
    return "proxy"


_VERBS: Final = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def verb_for(method: str) -> str:
    """The authorization verb of an HTTP method."""
    return _VERBS.get(method.upper(), "")


@attrs.frozen
class AuthResult:
    """Outcome of :meth:`KubeletAuth.check`: the user, or the HTTP status refusing the request."""

    user: User | None
    status: int = 200
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether the request may proceed."""
        return self.status == 200


class _TTLCache:
    def __init__(self, clock: Callable[[], float], max_entries: int = 4096) -> None:
        self._clock = clock
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._max = max_entries

    def get(self, key: Any) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry[0] <= self._clock():
            del self._entries[key]
            return False, None
        return True, entry[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (self._clock() + ttl, value)


@attrs.define
class KubeletAuth:
    """Authenticates and authorizes kubelet API requests for ``node_name``.

    ``reviews`` is the API client for TokenReview and SubjectAccessReview. Without one, bearer
    tokens are refused and certificate users (trusted through the client CA) are allowed.
    """

    node_name: str
    reviews: ReviewClient | None = None
    insecure_allow_anonymous: bool = False
    token_ttl: float = 120.0
    token_failure_ttl: float = 10.0
    allow_ttl: float = 300.0
    deny_ttl: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _tokens: _TTLCache = attrs.field(init=False)
    _decisions: _TTLCache = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = _TTLCache(self.clock)
        self._decisions = _TTLCache(self.clock)
        if self.insecure_allow_anonymous:
            log.warning(
                "kubelet API of %s: anonymous requests are allowed without authorization "
                "(insecure_allow_anonymous)",
                self.node_name,
            )

    async def authenticate_token(self, token: str) -> User | None:
        """The user of ``token`` per TokenReview (cached), or ``None`` if it is invalid."""
        key = hashlib.sha256(token.encode()).digest()
        hit, cached = self._tokens.get(key)
        if hit:
            return cached  # type: ignore[no-any-return]
        if self.reviews is None:
            return None
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        answer = await self.reviews.create(TOKEN_REVIEW_PATH, review)
        status = (answer or {}).get("status") or {}
        user: User | None = None
        if status.get("authenticated"):
            info = status.get("user") or {}
            user = User(
                str(info.get("username", "")),
                tuple(info.get("groups") or ()),
                str(info.get("uid", "")),
                {k: tuple(v) for k, v in (info.get("extra") or {}).items()},
            )
        self._tokens.put(key, user, self.token_ttl if user else self.token_failure_ttl)
        return user

    async def authorize(self, user: User, verb: str, subresource: str) -> bool:
        """Whether ``user`` may ``verb`` ``nodes/<node>/<subresource>`` (SAR, cached)."""
        if self.reviews is None:
            return True
        key = (user.name, user.groups, user.uid, verb, subresource)
        hit, cached = self._decisions.get(key)
        if hit:
            return bool(cached)
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "resourceAttributes": {
                "verb": verb,
                "group": "",
                "version": "v1",
                "resource": "nodes",
                "subresource": subresource,
                "name": self.node_name,
            },
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }
        answer = await self.reviews.create(ACCESS_REVIEW_PATH, review)
        allowed = bool(((answer or {}).get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed, self.allow_ttl if allowed else self.deny_ttl)
        return allowed

    async def check(self, request: web.BaseRequest) -> AuthResult:
        """Authenticate then authorize ``request``."""
        user: User | None = None
        header = request.headers.get("Authorization", "")
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        try:
            user = user_from_peercert(cert)
            if user is None and header:
                scheme, _, token = header.partition(" ")
                token = token.strip()
                if scheme.lower() != "bearer" or not token:
                    return AuthResult(None, 401, "Unauthorized")
                user = await self.authenticate_token(token)
                if user is None:
                    return AuthResult(None, 401, "Unauthorized")
            if user is None:
                if self.insecure_allow_anonymous:
                    return AuthResult(ANONYMOUS)
                return AuthResult(None, 401, "Unauthorized")
            verb = verb_for(request.method)
            subresource = subresource_for(request.path)
            if not await self.authorize(user, verb, subresource):
                message = (
                    f"Forbidden (user={user.name}, verb={verb}, resource=nodes, "
                    f"subresource={subresource})"
                )
                return AuthResult(user, 403, message)
        except Exception as exc:  # the API server is unreachable or answered garbage
            log.warning("kubelet auth review failed: %s", type(exc).__name__)
            return AuthResult(user, 500, "authentication or authorization review failed")
        return AuthResult(user)
