"""TLS material of the kubelet API: given certificate files, or a generated self-signed pair.

The kubelet API is always served over TLS. With an embedded API server the serving certificate
is issued by its CA; against another cluster, a recipe or the CLI passes files, or
:func:`self_signed` makes one (as a kubelet does without ``--tls-cert-file``; kube-apiserver
does not verify kubelet serving certificates unless given ``--kubelet-certificate-authority``).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TLSFiles", "self_signed", "server_ssl_context"]


@attrs.frozen
class TLSFiles:
    """A PEM certificate (chain) and its key."""

    cert: Path
    key: Path


def self_signed(
    node_name: str,
    ips: Sequence[str] = ("127.0.0.1",),
    *,
    directory: Path | None = None,
    days: int = 365,
) -> TLSFiles:
    """A self-signed serving certificate for ``node_name`` (written to ``directory``, or a new
    temporary directory)."""
    directory = Path(directory or tempfile.mkdtemp(prefix="vkcompose-kubelet-"))
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name}@vkcompose")])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(node_name), x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{node_name}.crt"
    key_path = directory / f"{node_name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TLSFiles(cert_path, key_path)


def server_ssl_context(files: TLSFiles, client_ca: Path | None = None) -> ssl.SSLContext:
    """The kubelet's TLS: ``files`` as the serving pair; client certificates are requested and
    verified against ``client_ca`` when given (optional: tokens remain possible)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
