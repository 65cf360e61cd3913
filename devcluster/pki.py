"""Certificates and keys for the local control plane.

One CA signs the kube-apiserver serving certificate and an admin client
certificate in ``system:masters``; a separate RSA key signs service account
tokens.  Everything is created once per state directory and reused.  The real
node's kubelet and kube-proxy get client certificates from the same CA
(``ensure_client_cert``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)
API_SANS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _sign(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    is_ca: bool,
    usage: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not is_ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def ensure_pki(pki: Path, service_ip: str) -> None:
    """Create the CA, serving and client certificates and the SA key unless present."""
    if (pki / "admin.crt").exists() and (pki / "sa.pub").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ks-devcluster-ca")
    ca = _sign(subject=ca_name, public_key=ca_key.public_key(), issuer=ca_name, issuer_key=ca_key, is_ca=True)
    _write_key(pki / "ca.key", ca_key)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in API_SANS]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
    server = _sign(
        subject=_name("kube-apiserver"),
        public_key=server_key.public_key(),
        issuer=ca_name,
        issuer_key=ca_key,
        is_ca=False,
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=sans,
    )
    _write_key(pki / "apiserver.key", server_key)
    (pki / "apiserver.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _sign(
        subject=_name("admin", "system:masters"),
        public_key=admin_key.public_key(),
        issuer=ca_name,
        issuer_key=ca_key,
        is_ca=False,
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write_key(pki / "admin.key", admin_key)
    (pki / "admin.crt").write_bytes(admin.public_bytes(serialization.Encoding.PEM))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def ensure_client_cert(pki: Path, name: str, *, cn: str, org: str | None = None) -> tuple[Path, Path]:
    """``<name>.crt``/``<name>.key``: a client certificate for ``cn`` (in group ``org``) from the CA."""
    crt, key_path = pki / f"{name}.crt", pki / f"{name}.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(
        subject=_name(cn, org),
        public_key=key.public_key(),
        issuer=ca.subject,
        issuer_key=ca_key,
        is_ca=False,
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key_path


def ensure_serving_cert(
    pki: Path, name: str, *, cn: str, ips: tuple[str, ...] = ("127.0.0.1",)
) -> tuple[Path, Path]:
    """``<name>.crt``/``<name>.key``: a serving certificate for ``ips`` from the CA (another local server)."""
    crt, key_path = pki / f"{name}.crt", pki / f"{name}.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(
        subject=_name(cn),
        public_key=key.public_key(),
        issuer=ca.subject,
        issuer_key=ca_key,
        is_ca=False,
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=[x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips],
    )
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key_path
