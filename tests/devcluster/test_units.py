"""Pure logic of the dev cluster tooling: version pins, module lists, PKI, process cleanup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from devcluster import build, pki, processes, settings


def test_versions_file_pins_every_component() -> None:
    v = settings.load_versions()
    for value in (v.kubernetes, v.etcd, v.kwok):
        assert value.startswith("v") and value.count(".") == 2


def test_staging_modules_are_read_from_the_kubernetes_go_mod() -> None:
    gomod = """module k8s.io/kubernetes

go 1.25.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/foo/bar => github.com/foo/bar v1.0.0
)
"""
    assert build._staging_modules(gomod) == ["k8s.io/api", "k8s.io/client-go"]
    assert build._go_directive(gomod) == "1.25.0"


def test_version_is_stamped_into_kubernetes_binaries() -> None:
    flags = build._ldflags_k8s("v1.36.3")
    assert "k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "gitMinor=36" in flags


def test_pki_chain_and_sans(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, "10.96.0.1")
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    admin = x509.load_pem_x509_certificate((tmp_path / "admin.crt").read_bytes())
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    for cert in (server, admin):
        cert.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.96.0.1"}
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    assert oct((tmp_path / "admin.key").stat().st_mode & 0o777) == "0o600"
    # A second call keeps what exists.
    before = (tmp_path / "ca.crt").read_bytes()
    pki.ensure_pki(tmp_path, "10.96.0.1")
    assert (tmp_path / "ca.crt").read_bytes() == before


def test_stop_leaves_no_process_of_the_state_dir(tmp_path: Path) -> None:
    # A process that mentions the state dir in its command line, not recorded in any state file.
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time,sys; time.sleep(600)", str(tmp_path / "marker")],
        start_new_session=True,
    )
    recorded = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        stopped = processes.stop({"sleeper": recorded.pid}, tmp_path, grace=5)
        assert "sleeper" in stopped
        assert str(stray.pid) in stopped
        for proc in (stray, recorded):
            proc.wait(timeout=5)
        assert not processes.pid_alive(stray.pid)
    finally:
        for proc in (stray, recorded):
            proc.kill()


def test_start_names_component_port_and_log_when_it_exits(tmp_path: Path) -> None:
    port = processes.free_port()
    comp = processes.Component("broken", ["sh", "-c", "echo boom; exit 3"], port, lambda: False, timeout=5)
    try:
        processes.start(comp, tmp_path)
    except processes.ClusterError as exc:
        message = str(exc)
    else:
        raise AssertionError("start() accepted a component that exited")
    assert "broken exited with code 3" in message
    assert f"port {port}" in message
    assert str(tmp_path / "broken.log") in message
    assert "boom" in message


def test_start_reports_a_component_that_never_gets_ready(tmp_path: Path) -> None:
    # sh's $0 carries the state dir, so the sweep in stop() would find a process left behind.
    comp = processes.Component(
        "slow", ["sh", "-c", "sleep 30", str(tmp_path)], None, lambda: False, timeout=0.5
    )
    try:
        processes.start(comp, tmp_path)
    except processes.ClusterError as exc:
        assert "slow was not ready after" in str(exc)
        assert "it was stopped" in str(exc)
    else:
        raise AssertionError("start() accepted a component that never became ready")
    finally:
        stopped = processes.stop({}, tmp_path, grace=2)
    assert not stopped, f"start() left the never-ready process behind: {stopped}"
