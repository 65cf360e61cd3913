"""Where the platform's processes get their Kubernetes credentials, in one order.

1. an explicit kubeconfig file (``--kubeconfig``);
2. ``$KUBECONFIG`` (its first entry);
3. the pod's service account (``KUBERNETES_SERVICE_HOST`` set, token and CA mounted);
4. ``~/.kube/config``.

The result is the pinned client's :class:`kubernetes.client.Configuration`,
whatever transport a package then uses (the generated client in threads, kopf,
aiohttp).  :func:`bearer_token` reads the token the way every loader stores it
(the in-cluster loader keeps it under ``BearerToken``, older code paths under
``authorization``) and calls the refresh hook, so a rotated service-account
token is picked up.  :func:`ssl_context` turns the same configuration into an
``ssl.SSLContext`` for clients that do not use urllib3.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from kubernetes import client, config
from kubernetes.config import incluster_config

from kubesphere.errors import CredentialsError

SERVICE_ACCOUNT_ENV = "KUBERNETES_SERVICE_HOST"


def source(path: Path | None = None) -> Path | str:
    """Which credentials :func:`load` would use: a file, or ``"in-cluster"``."""
    env_path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    if path is not None:
        return Path(path)
    if env_path:
        return Path(env_path)
    if os.environ.get(SERVICE_ACCOUNT_ENV):
        return "in-cluster"
    if default.exists():
        return default
    raise CredentialsError("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a pod")


def load(path: Path | None = None, *, service_account: Path | None = None) -> client.Configuration:
    """A client Configuration from the first source that applies (see the module docstring)."""
    where = source(path)
    cfg = client.Configuration()
    try:
        if where == "in-cluster":
            token, ca = (
                (str(service_account / "token"), str(service_account / "ca.crt"))
                if service_account is not None
                else (incluster_config.SERVICE_TOKEN_FILENAME, incluster_config.SERVICE_CERT_FILENAME)
            )
            loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=token, cert_filename=ca
            )
            loader.load_and_set(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            if not Path(where).exists():
                raise CredentialsError(f"kubeconfig {where}: no such file")
            config.load_kube_config(config_file=str(where), client_configuration=cfg)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError, ValueError) as exc:
        raise CredentialsError(f"cannot load Kubernetes credentials from {where}: {exc}") from exc
    return cfg


def api_client(path: Path | None = None) -> client.ApiClient:
    """The generated client's ApiClient on :func:`load`'s credentials."""
    return client.ApiClient(configuration=load(path))


def bearer_token(cfg: client.Configuration) -> str | None:
    """The ``Authorization`` header value the configuration carries (``Bearer ...``), if any."""
    value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
    return str(value) if value else None


def ssl_context(cfg: client.Configuration) -> ssl.SSLContext | bool:
    """TLS settings of ``cfg`` for a non-urllib3 client; ``False`` for a plain-HTTP server."""
    if not str(cfg.host).startswith("https"):
        return False
    if cfg.verify_ssl:
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx
