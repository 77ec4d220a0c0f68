"""Authentication (client certificates, bearer tokens) and a small built-in authorizer."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "Authenticator",
    "UserInfo",
    "allowed",
    "forbidden_message",
    "user_from_peercert",
]


@attrs.frozen
class UserInfo:
    """An authenticated identity (``user.Info`` of kube-apiserver)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``UserInfo`` JSON of TokenReview / SelfSubjectReview statuses."""
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ADMIN = UserInfo(
    "kubernetes-admin", ("kubeadm:cluster-admins", "system:masters", "system:authenticated")
)
ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))

TokenVerifier = Callable[[str], "UserInfo | None"]


def user_from_peercert(cert: Mapping[str, Any] | None) -> UserInfo | None:
    """The identity of a verified client certificate: CN is the user, each O a group."""
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
    return UserInfo(name, (*groups, "system:authenticated"))


class Authenticator:
    """Resolves bearer tokens: static tokens first, then pluggable verifiers (SA tokens)."""

    def __init__(self, static_tokens: Mapping[str, UserInfo] | None = None) -> None:
        self._static = dict(static_tokens or {})
        self.verifiers: list[TokenVerifier] = []

    def add_token(self, token: str, user: UserInfo) -> None:
        """Accept ``token`` as ``user``."""
        self._static[token] = user

    def authenticate_token(self, token: str) -> UserInfo | None:
        """The user of a bearer token, or ``None``."""
        for known, user in self._static.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return user
        for verify in self.verifiers:
            verified = verify(token)
            if verified is not None:
                return verified
        return None


_PRIVILEGED_GROUPS = frozenset({"system:masters", "system:nodes", "system:serviceaccounts"})


def allowed(user: UserInfo, verb: str, resource: str, namespace: str) -> bool:
    """Built-in policy: cluster admins, nodes and service accounts may do everything; other
    authenticated users may only read discovery (resource ``""``)."""
    if _PRIVILEGED_GROUPS.intersection(user.groups):
        return True
    return not resource and verb == "get" and "system:authenticated" in user.groups


def forbidden_message(
    user: UserInfo, verb: str, resource: str, group: str, namespace: str, path: str
) -> str:
    """kube-apiserver's RBAC denial message."""
    if not resource:
        return f'forbidden: User "{user.name}" cannot {verb} path "{path}"'
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (
        f'{resource} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" '
        f'in API group "{group}"{scope}'
    )
