"""The kubeconfig and CSR logic of ``controllers.kubeconfigs`` and the CSR controller's approval rule."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controllers import csr, kubeconfigs


def _certificate(cn: str, *, days: float) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def test_a_new_kubeconfig_needs_a_certificate_and_one_filed_does_not() -> None:
    text = kubeconfigs.build(user="bob", server="https://k:6443", ca_data="Q0E=")
    doc = yaml.safe_load(text)
    assert doc["current-context"] == "bob@local" and doc["users"] == [{"name": "bob", "user": {}}]
    assert doc["clusters"][0]["cluster"] == {"server": "https://k:6443", "certificate-authority-data": "Q0E="}
    assert kubeconfigs.needs_certificate(text, "bob")
    filed = kubeconfigs.with_credentials(
        text, user="bob", cert_pem=_certificate("bob", days=365), key_pem=b"K"
    )
    assert not kubeconfigs.needs_certificate(filed, "bob")
    assert yaml.safe_load(filed)["users"][0]["user"]["client-key-data"] == base64.b64encode(b"K").decode()
    assert yaml.safe_load(filed)["clusters"] == doc["clusters"]


def test_a_certificate_near_its_end_is_renewed() -> None:
    text = kubeconfigs.build(user="bob", server="https://k")
    soon = kubeconfigs.with_credentials(text, user="bob", cert_pem=_certificate("bob", days=2), key_pem=b"K")
    assert kubeconfigs.needs_certificate(soon, "bob")
    assert kubeconfigs.needs_certificate("not: [yaml", "bob")


def test_csr_object_asks_for_the_users_client_certificate() -> None:
    obj = kubeconfigs.csr_object("bob", now=1700000000)
    meta, spec = obj["metadata"], obj["spec"]
    assert meta["name"] == "bob-csr-1700000000" and meta["labels"] == {kubeconfigs.USERNAME_LABEL: "bob"}
    assert meta["annotations"][kubeconfigs.PRIVATE_KEY_ANNOTATION].startswith(
        "-----BEGIN RSA PRIVATE KEY-----"
    )
    assert spec["signerName"] == "kubernetes.io/kube-apiserver-client" and "client auth" in spec["usages"]
    assert kubeconfigs.request_subject(obj) == "bob"
    assert kubeconfigs.request_subject({"spec": {"request": "bm90IGEgY3Ny"}}) == ""


class _Identity(csr.Identity):
    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name


def test_only_our_own_requests_for_the_labelled_user_are_approved() -> None:
    ours: dict[str, Any] = {**kubeconfigs.csr_object("bob"), "apiVersion": "certificates.k8s.io/v1"}
    ours["spec"]["username"] = "ks-controller-manager"
    me = _Identity("ks-controller-manager")
    assert csr.ours(None, ours, me)  # type: ignore[arg-type]
    someone_else = {**ours, "spec": {**ours["spec"], "username": "mallory"}}
    assert not csr.ours(None, someone_else, me)  # type: ignore[arg-type]
    relabelled = {**ours, "metadata": {**ours["metadata"], "labels": {kubeconfigs.USERNAME_LABEL: "admin"}}}
    assert not csr.ours(None, relabelled, me)  # type: ignore[arg-type]
    other_signer = {**ours, "spec": {**ours["spec"], "signerName": "example.com/other"}}
    assert not csr.ours(None, other_signer, me)  # type: ignore[arg-type]
