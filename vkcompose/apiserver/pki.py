"""A small PKI for the embedded API server: a CA, serving and client certificates, kubeconfig.

Keys are ECDSA P-256 (fast to generate, accepted by kubectl and Python's ssl). Files are
written with mode 0600 and reused on restart, so a kubeconfig stays valid across restarts.

>>> import tempfile, pathlib
>>> pki = load_or_create_pki(pathlib.Path(tempfile.mkdtemp()))
>>> pki.admin.cert_path.name, pki.ca_path.name
('admin.crt', 'ca.crt')
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"


@attrs.frozen
class KeyPair:
    """A certificate and its private key, as PEM bytes, and where they are on disk."""

    cert_pem: bytes
    key_pem: bytes
    cert_path: Path
    key_path: Path

    def certificate(self) -> x509.Certificate:
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The parsed private key."""
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("expected an EC private key")
        return key


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def create_ca(directory: Path, common_name: str = "vkcompose-ca", days: int = 3650) -> KeyPair:
    """Generate a self-signed CA into ``directory/ca.{crt,key}``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(
        cert.public_bytes(serialization.Encoding.PEM),
        _key_pem(key),
        directory / "ca.crt",
        directory / "ca.key",
    )
    _write(pair.cert_path, pair.cert_pem, 0o644)
    _write(pair.key_path, pair.key_pem, 0o600)
    return pair


def issue(
    ca: KeyPair,
    directory: Path,
    stem: str,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
    days: int = 365,
) -> KeyPair:
    """Issue a certificate signed by ``ca`` into ``directory/<stem>.{crt,key}``.

    For client certificates the Kubernetes convention applies: CN is the user name and each
    O (organization) a group.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = ca.certificate()
    now = _now()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca.private_key(), hashes.SHA256())
    pair = KeyPair(
        cert.public_bytes(serialization.Encoding.PEM),
        _key_pem(key),
        directory / f"{stem}.crt",
        directory / f"{stem}.key",
    )
    _write(pair.cert_path, pair.cert_pem, 0o644)
    _write(pair.key_path, pair.key_pem, 0o600)
    return pair


def _load(directory: Path, stem: str) -> KeyPair | None:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    if not (cert_path.exists() and key_path.exists()):
        return None
    pair = KeyPair(cert_path.read_bytes(), key_path.read_bytes(), cert_path, key_path)
    if pair.certificate().not_valid_after_utc < _now() + datetime.timedelta(days=1):
        return None
    return pair


@attrs.frozen
class PKI:
    """The embedded API server's certificates.

    * ``server`` — the API server's serving certificate (localhost, 127.0.0.1, the
      ``kubernetes`` service names);
    * ``admin`` — client certificate of the generated kubeconfig (``system:masters``);
    * ``kubelet_client`` — what the API server presents to kubelets (logs, exec …);
    * ``service_account_key`` — the PEM key signing service-account tokens.
    """

    directory: Path
    ca: KeyPair
    server: KeyPair
    admin: KeyPair
    kubelet_client: KeyPair
    service_account_key: bytes

    @property
    def ca_path(self) -> Path:
        """Path of the CA certificate (what clients trust)."""
        return self.ca.cert_path

    def issue_kubelet_serving(self, node_name: str, ips: Sequence[str] = ("127.0.0.1",)) -> KeyPair:
        """A serving certificate for a kubelet endpoint of ``node_name``."""
        return issue(
            self.ca,
            self.directory / "kubelets",
            node_name,
            f"system:node:{node_name}",
            organizations=("system:nodes",),
            dns_names=(node_name, "localhost"),
            ip_addresses=ips,
            server=True,
            client=True,
        )

    def server_ssl_context(self) -> ssl.SSLContext:
        """TLS for the API server: its certificate, client certificates optional (CA-verified)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server.cert_path, self.server.key_path)
        context.load_verify_locations(cafile=str(self.ca_path))
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_ssl_context(self, pair: KeyPair | None = None) -> ssl.SSLContext:
        """TLS for a client trusting this CA, presenting ``pair`` if given."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if pair is not None:
            context.load_cert_chain(pair.cert_path, pair.key_path)
        return context


def load_or_create_pki(
    directory: Path,
    *,
    hosts: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
) -> PKI:
    """Reuse the PKI under ``directory`` (``pki/``), creating what is missing or expiring."""
    directory = Path(directory) / "pki"
    ca = _load(directory, "ca") or create_ca(directory)
    ca_fresh = ca.certificate()

    def ensure(stem: str, make: Any) -> KeyPair:
        pair = _load(directory, stem)
        if pair is not None and pair.certificate().issuer == ca_fresh.subject:
            try:
                pair.certificate().verify_directly_issued_by(ca_fresh)
                return pair
            except (ValueError, TypeError, Exception):
                pass
        return make()  # type: ignore[no-any-return]

    service_names = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    server = ensure(
        "apiserver",
        lambda: issue(
            ca,
            directory,
            "apiserver",
            "kube-apiserver",
            dns_names=(*hosts, *service_names),
            ip_addresses=(*ips, "10.96.0.1"),
            server=True,
        ),
    )
    admin = ensure(
        "admin",
        lambda: issue(
            ca, directory, "admin", ADMIN_USER, organizations=(ADMIN_GROUP,), client=True
        ),
    )
    kubelet_client = ensure(
        "apiserver-kubelet-client",
        lambda: issue(
            ca,
            directory,
            "apiserver-kubelet-client",
            KUBELET_CLIENT_USER,
            organizations=(ADMIN_GROUP,),
            client=True,
        ),
    )
    sa_path = directory / "sa.key"
    if sa_path.exists():
        sa_key = sa_path.read_bytes()
    else:
        sa_key = _key_pem(ec.generate_private_key(ec.SECP256R1()))
        _write(sa_path, sa_key, 0o600)
    return PKI(directory, ca, server, admin, kubelet_client, sa_key)


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_path: Path | None,
    client: KeyPair | None = None,
    token: str | None = None,
    cluster_name: str = "vkcompose",
    user_name: str = "vkcompose-admin",
    namespace: str = "default",
) -> Path:
    """Write a kubeconfig (mode 0600) for ``server`` with client-certificate or token auth."""
    cluster: dict[str, Any] = {"server": server}
    if ca_path is not None:
        cluster["certificate-authority"] = str(ca_path)
    user: dict[str, Any] = {}
    if client is not None:
        user["client-certificate"] = str(client.cert_path)
        user["client-key"] = str(client.key_path)
    if token is not None:
        user["token"] = token
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [
            {
                "name": cluster_name,
                "context": {"cluster": cluster_name, "user": user_name, "namespace": namespace},
            }
        ],
        "current-context": cluster_name,
        "preferences": {},
    }
    _write(path, yaml.safe_dump(doc, sort_keys=False).encode(), 0o600)
    return path


__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "KUBELET_CLIENT_USER",
    "PKI",
    "KeyPair",
    "create_ca",
    "issue",
    "load_or_create_pki",
    "write_kubeconfig",
]
