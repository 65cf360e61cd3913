"""config.kubesphere.io, version and the OpenAPI document: open to everyone, and nothing secret in them."""

from __future__ import annotations

import importlib.metadata

import pytest
import requests

from apiserver.kapis.config import configz, gpu_kinds, oauth_options
from kubesphere.config import parse
from tests.apiserver.conftest import ApiServer

CONFIG = "/kapis/config.kubesphere.io/v1alpha2/configs"


def test_oauth_options_hide_secrets_and_count_nanoseconds() -> None:
    cfg = parse(
        {
            "authentication": {
                "oauthOptions": {
                    "accessTokenMaxAge": "2h",
                    "accessTokenInactivityTimeout": "30m",
                    "clients": [{"name": "kubesphere", "secret": "s3cret"}],
                    "identityProviders": [
                        {
                            "name": "ldap",
                            "type": "LDAPIdentityProvider",
                            "mappingMethod": "auto",
                            "provider": {"managerPassword": "pw"},
                        }
                    ],
                }
            }
        },
        env={},
    )
    out = oauth_options(cfg)
    assert out["accessTokenMaxAge"] == 7200 * 10**9
    assert out["accessTokenInactivityTimeout"] == 1800 * 10**9
    assert out["identityProviders"] == [
        {"name": "ldap", "type": "LDAPIdentityProvider", "mappingMethod": "auto"}
    ]
    assert "s3cret" not in str(out) and "pw" not in str(out) and "clients" not in out


def test_configz_follows_the_sections() -> None:
    cfg = parse(
        {
            "devops": {"host": "http://j"},
            "monitoring": {"endpoint": "http://p"},
            "multicluster": {"clusterRole": "none", "enable": False},
            "cache": {"type": "redis", "options": {"host": "r"}},
        },
        env={},
    )
    found = configz(cfg)
    assert found["devops"] and found["monitoring"] and found["redis"]
    assert not found["multicluster"] and not found["logging"] and not found["ldap"]
    assert all(isinstance(v, bool) for v in found.values())
    assert not configz(parse({"monitoring": {"endpoint": ""}}, env={}))["monitoring"]


def test_gpu_kinds_as_configured_else_null() -> None:
    kinds = [{"resourceName": "nvidia.com/gpu", "resourceType": "GPU", "default": True, "extra": "x"}]
    assert gpu_kinds(parse({"gpu": {"kinds": kinds}}, env={})) == [
        {"resourceName": "nvidia.com/gpu", "resourceType": "GPU", "default": True}
    ]
    assert gpu_kinds(parse({}, env={})) is None
    assert gpu_kinds(parse({"gpu": {"kinds": []}}, env={})) is None


@pytest.mark.cluster
def test_config_version_and_docs_need_no_login(apiserver: ApiServer) -> None:
    for path in (f"{CONFIG}/oauth", f"{CONFIG}/configz", "/kapis/version", "/openapi.json", "/docs"):
        resp = requests.get(apiserver.url + path, timeout=10)
        assert resp.status_code == 200, (path, resp.text)
    oauth = requests.get(apiserver.url + f"{CONFIG}/oauth", timeout=10).json()
    assert oauth["accessTokenMaxAge"] == 7200 * 10**9 and "clients" not in oauth
    assert "kubesphere" not in str(oauth.get("identityProviders"))
    version = requests.get(apiserver.url + "/kapis/version", timeout=10).json()
    # The console picks its API paths from gitVersion's major.minor (above 3.2: tenant v1alpha3).
    assert (version["gitVersion"], version["gitMajor"], version["gitMinor"]) == ("v3.4.1", "3", "4")
    assert version["serverVersion"] == "v" + importlib.metadata.version("kubesphere-installer")
    assert version["kubernetes"]["major"] == "1"
    page = requests.get(apiserver.url + "/docs", timeout=10).text
    assert "/kapis/iam.kubesphere.io/v1alpha2/users" in page
    # Self-contained: no scripts, stylesheets or images from elsewhere.
    assert "<script" not in page and "src=" not in page and "<link" not in page
