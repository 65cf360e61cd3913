"""Per-user kubeconfigs, KubeSphere 3.4's way: a ``kubeconfig-<user>`` ConfigMap and a client certificate.

The user controller writes the ConfigMap (key ``config``: one cluster ``local``
with the API server and its CA, the context ``<user>@local`` in namespace
``default``) and asks for a certificate: a CertificateSigningRequest named
``<user>-csr-<unix time>`` for the ``kubernetes.io/kube-apiserver-client``
signer, subject CN ``<user>``, labelled ``kubesphere.io/username``, its RSA
private key in the annotation ``kubesphere.io/private-key``.  The CSR
controller (``controllers.csr``) approves it; kube-controller-manager signs
it; the controller then writes key and certificate into the ConfigMap's user
entry and deletes the CSR.  A certificate within 72 hours of expiry is renewed
the same way (the old credentials stay until the new ones arrive).

The key lives in the CSR only until the certificate is issued, and then in the
ConfigMap, as in KubeSphere: whoever may read ConfigMaps in the controls
namespace or CSRs may act as the user.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CLUSTER = "local"
KEY = "config"
USERNAME_LABEL = "kubesphere.io/username"
PRIVATE_KEY_ANNOTATION = "kubesphere.io/private-key"
SIGNER = "kubernetes.io/kube-apiserver-client"
#: A certificate closer than this to its end is renewed.
RESIDUAL = dt.timedelta(hours=72)


def configmap_name(user: str) -> str:
    return f"kubeconfig-{user}"


def build(*, user: str, server: str, ca_data: str | None = None) -> str:
    """The kubeconfig text for ``user`` against ``server``; its user entry has no credential yet."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    context = f"{user}@{CLUSTER}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "contexts": [
            {"name": context, "context": {"cluster": CLUSTER, "user": user, "namespace": "default"}}
        ],
        "current-context": context,
        "users": [{"name": user, "user": {}}],
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def with_credentials(text: str, *, user: str, cert_pem: bytes, key_pem: bytes) -> str:
    """``text`` with the user entry holding the client certificate and key (base64 data fields)."""
    doc = yaml.safe_load(text) or {}
    entry = {
        "client-certificate-data": base64.b64encode(cert_pem).decode(),
        "client-key-data": base64.b64encode(key_pem).decode(),
    }
    doc["users"] = [{"name": user, "user": entry}]
    return yaml.safe_dump(doc, sort_keys=False)


def certificate(text: str, user: str) -> x509.Certificate | None:
    """The client certificate in the user entry of ``text``, if there is one that parses."""
    try:
        doc = yaml.safe_load(text) or {}
        for item in doc.get("users") or []:
            if item.get("name") == user:
                data = (item.get("user") or {}).get("client-certificate-data")
                return x509.load_pem_x509_certificate(base64.b64decode(data)) if data else None
    except (ValueError, TypeError, AttributeError, yaml.YAMLError):
        return None
    return None


def needs_certificate(text: str, user: str, *, now: dt.datetime | None = None) -> bool:
    """No certificate yet, or one that ends within :data:`RESIDUAL`."""
    cert = certificate(text, user)
    if cert is None:
        return True
    return cert.not_valid_after_utc < (now or dt.datetime.now(dt.UTC)) + RESIDUAL


def csr_object(user: str, *, now: float | None = None) -> dict[str, Any]:
    """A CertificateSigningRequest for ``user`` (a new RSA key), in KubeSphere's shape."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return {
        "metadata": {
            "name": f"{user}-csr-{int(now if now is not None else time.time())}",
            "labels": {USERNAME_LABEL: user},
            "annotations": {PRIVATE_KEY_ANNOTATION: key_pem.decode()},
        },
        "spec": {
            "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": SIGNER,
            "usages": ["key encipherment", "client auth", "digital signature"],
        },
    }


def request_subject(csr: dict[str, Any]) -> str:
    """The CN the CSR asks for ("" when it does not parse)."""
    try:
        pem = base64.b64decode((csr.get("spec") or {}).get("request") or "")
        names = x509.load_pem_x509_csr(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ""
    return str(names[0].value) if names else ""
