"""PKI (real TLS handshakes on loopback) and service-account tokens."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from vkcompose.apiserver.pki import load_or_create_pki, write_kubeconfig
from vkcompose.apiserver.tokens import TokenIssuer

pytestmark = pytest.mark.anyio

ISSUER = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> object:
    """Connect over TLS on 127.0.0.1; the client certificate the server saw, or None when the
    server refused the connection."""
    seen: list[object] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        with anyio.fail_after(10):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
            )
            data = await reader.read()
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
    if data != b"ok":
        assert not seen
        return None
    return seen[0]


async def test_client_certificate_identity_over_real_tls(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path)
    peer = await handshake(pki.server_ssl_context(), pki.client_ssl_context(pki.admin))
    assert isinstance(peer, dict)
    subject = dict(item for rdn in peer["subject"] for item in rdn)
    assert subject["commonName"] == "kubernetes-admin"
    assert subject["organizationName"] == "system:masters"


async def test_client_from_another_ca_is_refused(tmp_path: Path) -> None:
    ours = load_or_create_pki(tmp_path / "a")
    theirs = load_or_create_pki(tmp_path / "b")
    context = ours.client_ssl_context()
    context.load_cert_chain(theirs.admin.cert_path, theirs.admin.key_path)
    try:
        peer = await handshake(ours.server_ssl_context(), context)
    except (ssl.SSLError, ConnectionError):
        peer = None
    assert peer is None


def test_pki_is_reused_across_restarts_and_files_are_private(tmp_path: Path) -> None:
    first = load_or_create_pki(tmp_path)
    second = load_or_create_pki(tmp_path)
    assert first.ca.cert_pem == second.ca.cert_pem
    assert first.admin.cert_pem == second.admin.cert_pem
    assert first.service_account_key == second.service_account_key
    assert (first.admin.key_path.stat().st_mode & 0o777) == 0o600
    assert (first.directory / "sa.key").stat().st_mode & 0o077 == 0


def test_kubelet_serving_certificate_names_the_node(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path)
    pair = pki.issue_kubelet_serving("vk-1")
    text = pair.certificate().subject.rfc4514_string()
    assert "CN=system:node:vk-1" in text


def test_kubeconfig_has_mode_0600(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path)
    path = write_kubeconfig(
        tmp_path / "kubeconfig", server="https://127.0.0.1:1", ca_path=pki.ca_path, token="t"
    )
    assert path.stat().st_mode & 0o777 == 0o600
    assert "certificate-authority" in path.read_text()


def test_token_round_trip_and_bound_pod() -> None:
    token, expires = ISSUER.issue(
        namespace="ns",
        service_account="builder",
        sa_uid="sa-uid",
        audiences=["vault"],
        expiration_seconds=600,
        pod=("web", "pod-uid"),
        now=1_000_000,
    )
    user = ISSUER.verify(token, audiences=["vault"], now=1_000_100)
    assert user is not None
    assert user.username == "system:serviceaccount:ns:builder"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ns",
                           "system:authenticated")  # fmt: skip
    assert user.extra["authentication.kubernetes.io/pod-name"] == ("web",)
    assert expires == 1_000_600
    assert ISSUER.verify(token, audiences=["other"], now=1_000_100) is None
    assert ISSUER.verify(token, now=1_000_600) is None  # expired


def test_token_from_another_key_is_rejected() -> None:
    other = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    token, _ = other.issue(namespace="a", service_account="b", sa_uid="c")
    assert ISSUER.verify(token) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_tampered_byte_breaks_the_token(position: int, flip: int) -> None:
    token, _ = ISSUER.issue(namespace="ns", service_account="sa", sa_uid="u")
    raw = bytearray(token.encode())
    index = position % len(raw)
    raw[index] = raw[index] ^ flip
    try:
        tampered = raw.decode()
    except UnicodeDecodeError:
        return
    if tampered != token:
        assert ISSUER.verify(tampered) is None
