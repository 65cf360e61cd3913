"""What every filter and handler shares: configuration, the Kubernetes client, caches, tokens.

One ``Context`` per process, stored on the aiohttp application under
``CONTEXT``; per request, the authentication filter puts the caller's
``UserInfo`` under ``USER_KEY`` and the request-info filter its
``RequestInfo`` under ``INFO_KEY``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from apiserver.kube import Caches, KubeClient
from kubesphere.config import Config

if TYPE_CHECKING:
    from apiserver.rbac import Authorizer
    from apiserver.signing import Signer
    from apiserver.tokens import TokenIssuer


@dataclass
class Context:
    config: Config
    kube: KubeClient
    caches: Caches
    authorizer: Authorizer
    tokens: TokenIssuer
    started: float = field(default_factory=time.time)
    #: The ID-token key; made on first use unless the command set it up (``apiserver.oidc``).
    signer: Signer | None = None


CONTEXT: web.AppKey[Context] = web.AppKey("context", Context)
USER_KEY = "user"
INFO_KEY = "request_info"
