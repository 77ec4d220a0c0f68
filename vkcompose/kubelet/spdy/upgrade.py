"""HTTP/1.1 -> SPDY/3.1 upgrade negotiation, as ``httpstream.Handshake`` + the SPDY upgrader do.

Server side (the kubelet)::

    decision = negotiate_upgrade(request.headers.items(), ["v4.channel.k8s.io", ...])
    if not decision.ok:
        return Response(status=decision.status, headers=decision.headers, body=decision.body)
    # write the 101 (``decision.response_head()`` for a raw transport), then run a
    # SpdySession(server=True) over the connection

Order and statuses follow Kubernetes: no ``X-Stream-Protocol-Version`` -> 400; no protocol in
common -> 403 listing ``X-Accepted-Stream-Protocol-Versions``; missing ``Connection: Upgrade`` /
``Upgrade: SPDY/3.1`` -> 400. Error bodies are ``metav1.Status`` JSON (kubectl prints their
``message``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "HEADER_ACCEPTED_PROTOCOL_VERSIONS",
    "HEADER_PROTOCOL_VERSION",
    "SPDY_31",
    "UpgradeDecision",
    "UpgradeFailed",
    "check_upgrade_response",
    "client_upgrade_headers",
    "comma_separated_values",
    "header_values",
    "is_upgrade_request",
    "negotiate_protocol",
    "negotiate_upgrade",
]

SPDY_31: Final = "SPDY/3.1"
HEADER_PROTOCOL_VERSION: Final = "X-Stream-Protocol-Version"
HEADER_ACCEPTED_PROTOCOL_VERSIONS: Final = "X-Accepted-Stream-Protocol-Versions"

_REASONS: Final = {
    101: "Switching Protocols",
    400: "Bad Request",
    403: "Forbidden",
}
_STATUS_REASONS: Final = {400: "BadRequest", 403: "Forbidden"}

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]


def header_values(headers: HeaderInput, name: str) -> list[str]:
    """All values of header ``name`` (case-insensitive) from a mapping or (name, value) pairs.

    Pass a multi-dict's ``.items()`` to see repeated headers.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    return [value for key, value in pairs if key.lower() == wanted]


def comma_separated_values(values: Iterable[str]) -> list[str]:
    """Split header values on commas and trim spaces, dropping empty items."""
    out = []
    for value in values:
        for item in value.split(","):
            if item := item.strip(" "):
                out.append(item)
    return out


def negotiate_protocol(client: Sequence[str], server: Sequence[str]) -> str | None:
    """The first of the client's protocols (in its order of preference) the server accepts."""
    for protocol in client:
        if protocol in server:
            return protocol
    return None


def is_upgrade_request(headers: HeaderInput) -> bool:
    """Whether a ``Connection`` header asks for an upgrade."""
    return any("upgrade" in value.lower() for value in header_values(headers, "Connection"))


def _status_body(code: int, message: str) -> bytes:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _STATUS_REASONS.get(code, ""),
        "code": code,
    }
    return json.dumps(status, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class UpgradeDecision:
    """Outcome of :func:`negotiate_upgrade`: a 101 to send, or an error response."""

    status: int
    headers: tuple[tuple[str, str], ...]
    protocol: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether the connection should switch to SPDY."""
        return self.status == 101

    @property
    def body(self) -> bytes:
        """Response body: empty for 101, a ``metav1.Status`` JSON otherwise."""
        return b"" if self.ok else _status_body(self.status, self.message)

    @property
    def content_type(self) -> str | None:
        """Content type of :attr:`body` (``None`` for 101)."""
        return None if self.ok else "application/json"

    def response_head(self) -> bytes:
        """The HTTP/1.1 status line and headers, for servers writing to a raw transport.

        For errors the ``Content-Type``/``Content-Length`` headers are included, so
        ``response_head() + body`` is the complete response.
        """
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, '')}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if not self.ok:
            lines += [f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def negotiate_upgrade(
    request_headers: HeaderInput, server_protocols: Sequence[str]
) -> UpgradeDecision:
    """Decide how to answer a SPDY upgrade request offering some stream protocols."""
    if not server_protocols:
        raise ValueError("server_protocols must not be empty")
    pairs = list(
        request_headers.items() if isinstance(request_headers, Mapping) else request_headers
    )
    client = comma_separated_values(header_values(pairs, HEADER_PROTOCOL_VERSION))
    if not client:
        return UpgradeDecision(
            400, (), message=f"unable to upgrade: {HEADER_PROTOCOL_VERSION} is required"
        )
    protocol = negotiate_protocol(client, server_protocols)
    if protocol is None:
        return UpgradeDecision(
            403,
            tuple((HEADER_ACCEPTED_PROTOCOL_VERSIONS, p) for p in server_protocols),
            message=(
                "unable to upgrade: unable to negotiate protocol: "
                f"client supports {client}, server accepts {list(server_protocols)}"
            ),
        )
    upgrade = " ".join(header_values(pairs, "Upgrade")).lower()
    if not is_upgrade_request(pairs) or SPDY_31.lower() not in upgrade:
        return UpgradeDecision(
            400, (), message="unable to upgrade: missing upgrade headers in request"
        )
    return UpgradeDecision(
        101,
        (
            (HEADER_PROTOCOL_VERSION, protocol),
            ("Connection", "Upgrade"),
            ("Upgrade", SPDY_31),
        ),
        protocol=protocol,
    )


# ------------------------------------------------------------------------------ client role
class UpgradeFailed(Exception):
    """The server did not switch to SPDY (``status`` and ``body`` as received)."""

    def __init__(self, message: str, *, status: int, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def client_upgrade_headers(protocols: Sequence[str]) -> list[tuple[str, str]]:
    """Request headers asking to upgrade to SPDY/3.1 with ``protocols`` (preferred first)."""
    headers = [("Connection", "Upgrade"), ("Upgrade", SPDY_31)]
    headers += [(HEADER_PROTOCOL_VERSION, p) for p in protocols]
    return headers


def check_upgrade_response(
    status: int, headers: HeaderInput, protocols: Sequence[str], body: bytes = b""
) -> str:
    """Validate a server's answer to :func:`client_upgrade_headers`; return the protocol.

    Like client-go, a 101 without ``X-Stream-Protocol-Version`` means the legacy protocol
    (returned as ``""``).
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    if status != 101:
        message = body.decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = str(json.loads(body)["message"])
        raise UpgradeFailed(f"unable to upgrade connection: {message}", status=status, body=body)
    if (
        not is_upgrade_request(pairs)
        or SPDY_31.lower() not in " ".join(header_values(pairs, "Upgrade")).lower()
    ):
        raise UpgradeFailed("unable to upgrade: missing upgrade headers in response", status=status)
    chosen = header_values(pairs, HEADER_PROTOCOL_VERSION)
    if not chosen:
        return ""
    if chosen[0] not in protocols:
        raise UpgradeFailed(
            f"server chose protocol {chosen[0]!r}, which was not offered", status=status
        )
    return chosen[0]
