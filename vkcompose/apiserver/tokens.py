"""Signed service-account tokens (JWT, ES256), as TokenRequest issues and TokenReview checks.

Claims follow kube-apiserver's bound tokens: ``iss``, ``sub``
(``system:serviceaccount:<ns>:<name>``), ``aud``, ``exp``/``iat``/``nbf``, ``jti`` and the
private ``kubernetes.io`` claim naming the namespace, service account, and the pod (and node)
the token is bound to.

>>> from cryptography.hazmat.primitives.asymmetric import ec
>>> issuer = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
>>> token, _ = issuer.issue(namespace="default", service_account="default", sa_uid="u1",
...                         audiences=["api"], expiration_seconds=3600)
>>> issuer.verify(token, audiences=["api"]).username
'system:serviceaccount:default:default'
>>> issuer.verify(token + "x") is None
True
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION_SECONDS = 600
"""TokenRequest refuses shorter lifetimes (``expirationSeconds`` must be ≥ 10 minutes)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class TokenUser:
    """Who a verified token says it is (what TokenReview returns)."""

    username: str
    uid: str
    groups: tuple[str, ...]
    extra: Mapping[str, tuple[str, ...]]
    audiences: tuple[str, ...]
    expires: int


class TokenIssuer:
    """Issues and verifies service-account JWTs with one EC P-256 key."""

    def __init__(
        self, key: ec.EllipticCurvePrivateKey | bytes, *, issuer: str = DEFAULT_ISSUER
    ) -> None:
        if isinstance(key, bytes):
            loaded = serialization.load_pem_private_key(key, password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise TypeError("service-account signing key must be an EC key")
            key = loaded
        self._key = key
        self.issuer = issuer
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = _b64(hashlib.sha256(public).digest())

    def issue(
        self,
        *,
        namespace: str,
        service_account: str,
        sa_uid: str,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
        expiration_seconds: int = 3600,
        pod: tuple[str, str] | None = None,
        node: tuple[str, str] | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A signed token and its expiry (unix seconds). ``pod``/``node`` are (name, uid)."""
        issued = int(now if now is not None else time.time())
        expires = issued + int(expiration_seconds)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": sa_uid},
        }
        if pod is not None:
            private["pod"] = {"name": pod[0], "uid": pod[1]}
        if node is not None:
            private["node"] = {"name": node[0], "uid": node[1]}
        claims = {
            "aud": list(audiences),
            "exp": expires,
            "iat": issued,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": issued,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
        }
        header = {"alg": "ES256", "kid": self.key_id, "typ": "JWT"}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64(signature)}", expires

    def verify(
        self, token: str, *, audiences: Sequence[str] | None = None, now: float | None = None
    ) -> TokenUser | None:
        """The token's user if the signature, issuer, times and audience check out."""
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = orjson.loads(_unb64(header_b64))
            claims = orjson.loads(_unb64(claims_b64))
            signature = _unb64(signature_b64)
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(signature) != 64:
            return None
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self._key.public_key().verify(
                der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return None
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            return None
        moment = now if now is not None else time.time()
        if not (claims.get("nbf", 0) - 60 <= moment < claims.get("exp", 0)):
            return None
        token_audiences = tuple(claims.get("aud") or ())
        if audiences is not None and not set(audiences) & set(token_audiences):
            return None
        private = claims.get("kubernetes.io") or {}
        namespace = private.get("namespace", "")
        account = private.get("serviceaccount") or {}
        extra: dict[str, tuple[str, ...]] = {}
        if "pod" in private:
            extra["authentication.kubernetes.io/pod-name"] = (private["pod"]["name"],)
            extra["authentication.kubernetes.io/pod-uid"] = (private["pod"]["uid"],)
        if "node" in private:
            extra["authentication.kubernetes.io/node-name"] = (private["node"]["name"],)
            extra["authentication.kubernetes.io/node-uid"] = (private["node"]["uid"],)
        extra["authentication.kubernetes.io/credential-id"] = (f"JTI={claims.get('jti', '')}",)
        return TokenUser(
            username=str(claims.get("sub", "")),
            uid=str(account.get("uid", "")),
            groups=(
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
            extra=extra,
            audiences=token_audiences,
            expires=int(claims["exp"]),
        )


__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "MIN_EXPIRATION_SECONDS",
    "TokenIssuer",
    "TokenUser",
]
