"""Key material for a throw-away control plane: a CA, the API server's serving certificate, an admin
client certificate and the ServiceAccount token signing key pair.

Everything is generated fresh per cluster, so no secret is shared between clusters (a token of one is
Unauthorized on another). Private keys and certificates are written 0600 because the admin key is
cluster-admin. EC P-256 keeps TLS keys fast to generate; the token signing key is RSA (RS256) because
every JWT library verifies it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names the serving certificate is valid for: loopback, and the in-cluster names of the API server.
SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
#: 10.0.0.1 is the `kubernetes` Service IP for the --service-cluster-ip-range the harness uses.
SERVING_IPS = ("127.0.0.1", "::1", "10.0.0.1")
ADMIN_COMMON_NAME = "kubejit-admin"
ADMIN_ORGANIZATION = "system:masters"
_VALIDITY = datetime.timedelta(days=365)
# Back-date certificates a little so a clock that lags by a few minutes still accepts them.
_BACKDATE = datetime.timedelta(hours=1)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ClusterCertificates:
    """Paths of the PEM files one control plane uses."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path  # private: signs tokens
    service_account_pub: Path  # public: verifies them


def write_private_file(path: Path, data: bytes) -> None:
    """Create or replace ``path`` with mode 0600 from the first byte on (no world-readable window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca(cluster_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"kubejit-{cluster_name}-ca")
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    *,
    usage: x509.ObjectIdentifier,
    san: x509.SubjectAlternativeName | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _serving_san() -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in SERVING_DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    return x509.SubjectAlternativeName(names)


def write_certificates(directory: Path, *, cluster_name: str) -> ClusterCertificates:
    """Generate all key material for one cluster into ``directory`` (created 0700 if missing)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = ClusterCertificates(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        service_account_key=directory / "service-account.key",
        service_account_pub=directory / "service-account.pub",
    )
    ca_key, ca_cert = _make_ca(cluster_name)
    serving_key, serving_cert = _make_leaf(
        ca_key, ca_cert, _name("kube-apiserver"), usage=ExtendedKeyUsageOID.SERVER_AUTH, san=_serving_san()
    )
    admin_key, admin_cert = _make_leaf(
        ca_key, ca_cert, _name(ADMIN_COMMON_NAME, ADMIN_ORGANIZATION), usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path, data in (
        (paths.ca_cert, _cert_pem(ca_cert)),
        (paths.ca_key, _key_pem(ca_key)),
        (paths.serving_cert, _cert_pem(serving_cert)),
        (paths.serving_key, _key_pem(serving_key)),
        (paths.admin_cert, _cert_pem(admin_cert)),
        (paths.admin_key, _key_pem(admin_key)),
        (paths.service_account_key, _key_pem(sa_key)),
        (paths.service_account_pub, sa_pub),
    ):
        write_private_file(path, data)
    return paths


@dataclass(frozen=True)
class ServingTls:
    """A CA and a serving certificate signed by it (e.g. the broker's HTTPS in jwt mode)."""

    ca_cert: Path
    cert: Path
    key: Path


def write_serving_tls(directory: Path, *, name: str) -> ServingTls:
    """A fresh CA and a certificate for loopback (127.0.0.1, ::1, localhost), written 0600."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca(name)
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")),
        ]
    )
    key, cert = _make_leaf(ca_key, ca_cert, _name(name), usage=ExtendedKeyUsageOID.SERVER_AUTH, san=san)
    paths = ServingTls(ca_cert=directory / "ca.crt", cert=directory / "tls.crt", key=directory / "tls.key")
    for path, data in (
        (paths.ca_cert, _cert_pem(ca_cert)),
        (paths.cert, _cert_pem(cert)),
        (paths.key, _key_pem(key)),
    ):
        write_private_file(path, data)
    return paths
