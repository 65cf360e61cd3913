"""The image and the manifests refer to things that exist (no container engine runs here,
so the Containerfile is checked for what can go wrong without building it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _copied(text: str) -> list[str]:
    """What the Containerfile COPYs from the build context (not from another stage)."""
    lines = re.findall(r"^COPY (.+)$", text, re.M)
    return [src for line in lines if not line.startswith("--from=") for src in line.split()[:-1]]


def test_containerfile_copies_what_exists_and_runs_our_commands() -> None:
    text = (REPO / "Containerfile").read_text()
    sources = _copied(text)
    assert sources, "no COPY lines"
    for src in sources:
        assert (REPO / src.rstrip("/")).exists(), f"Containerfile copies missing {src}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packaged = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    missing = [p for p in packaged if f"{p}/" not in sources]
    assert not missing, f"the image would lack the packages {missing}"
    scripts = project["project"]["scripts"]
    assert 'ENTRYPOINT ["ks-installer"]' in text and "ks-installer" in scripts
    assert re.search(r"^USER 1002$", text, re.M), "the image must not run as root"
    assert "KS_INSTALLER_PROJECT_DIR=/opt/ks-installer" in text


def test_containerfile_base_is_an_argument_and_the_image_holds_no_dev_state() -> None:
    text = (REPO / "Containerfile").read_text()
    # With a registry the upstream image is the default; `make image` passes a local Debian base.
    assert re.search(r"^ARG BASE=docker\.io/library/python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M), "the image itself must build on BASE"
    sources = _copied(text)
    assert not {"tests", ".local", ".venv", ".", "./"} & {src.rstrip("/") or "." for src in sources}
    ignored = (REPO / ".containerignore").read_text().split()
    assert {"tests", ".local", ".venv", ".git"} <= set(ignored), "the build context must leave them out"


def test_manifests_use_one_image_setting() -> None:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "installer.yaml").read_text()))
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    kustomization = yaml.safe_load((REPO / "deploy" / "kustomization.yaml").read_text())
    assert image.split(":")[0] == kustomization["images"][0]["name"]
    catalog = yaml.safe_load((REPO / "roles" / "common" / "defaults" / "main.yml").read_text())["ks_images"]
    project = catalog["ks_installer"]
    assert image == f"{project['repository']}:{project['tag']}"


def test_inventories_carry_the_sample_spec() -> None:
    sample = yaml.safe_load((REPO / "deploy" / "cluster-configuration.yaml").read_text())["spec"]
    bare = yaml.safe_load(
        (REPO / "inventory" / "sample" / "group_vars" / "all" / "cluster-configuration.yml").read_text()
    )
    assert bare["ks_spec"] == sample, "inventory/sample drifted from deploy/cluster-configuration.yaml"
