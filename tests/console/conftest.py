"""Fixtures of the console-compatibility suite: the apiserver suite's ks-apiserver (and Redis) and
the controller suite's ks-controller-manager, reused as they are, on the local cluster."""

from __future__ import annotations

from tests.apiserver.conftest import (  # noqa: F401 (fixtures)
    _apiserver_logs_on_failure,
    apiserver,
    apiserver_env,
    jwt_secret,
    monitoring,
    prometheus,
    start_apiserver,
    user_factory,
)
from tests.controllers.conftest import manager, managers_seen, objects  # noqa: F401 (fixtures)
