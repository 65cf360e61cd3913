"""kubesphere.yaml's defaults live in the schema; the core role and the docs say the same values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kubesphere.config import Config, ConfigError, format_duration, parse, parse_duration

REPO = Path(__file__).resolve().parents[2]
ROLE_DEFAULTS = REPO / "roles" / "ks_core" / "defaults" / "main.yml"


def _role_default(var: str) -> object:
    """The value the role renders when the spec is silent: spec_get's fallback, or the plain value."""
    value = yaml.safe_load(ROLE_DEFAULTS.read_text())[var]
    if isinstance(value, str):
        m = re.search(r"spec_get\('[^']+',\s*('?)([^')]+)\1\)", value)
        assert m, f"{var}: {value!r} is neither a value nor a spec_get with a fallback"
        return int(m.group(2)) if not m.group(1) else m.group(2)
    return value


def _doc_default(doc: str, key: str) -> str:
    for line in (REPO / "docs" / doc).read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == key:
            return cells[-1] if doc == "controllers.md" else cells[1]
    raise AssertionError(f"docs/{doc} has no row for {key}")


FIELDS = [
    # (kubesphere.yaml key, role variable, schema value, seconds?)
    ("authenticateRateLimiterMaxTries", "ks_core_rate_limiter_max_tries", "rate_limiter_max_tries", False),
    ("authenticateRateLimiterDuration", "ks_core_rate_limiter_duration", "rate_limiter_duration", True),
    ("loginHistoryRetentionPeriod", "ks_core_login_history_retention", "login_history_retention", True),
    ("loginHistoryMaximumEntries", "ks_core_login_history_max_entries", "login_history_max_entries", False),
]


@pytest.mark.parametrize(("key", "var", "attr", "duration"), FIELDS)
def test_role_defaults_and_docs_equal_the_schema(key: str, var: str, attr: str, duration: bool) -> None:
    schema = getattr(Config().authentication, attr)
    role = _role_default(var)
    if duration:
        assert parse_duration(role, key=var) == schema
    else:
        assert role == schema
    for doc in ("controllers.md", "cluster-configuration.md"):
        try:
            documented = _doc_default(doc, f"authentication.{key}")
        except AssertionError:
            if doc == "cluster-configuration.md" and key == "loginHistoryMaximumEntries":
                continue  # not a spec field: the role renders the schema's value
            raise
        assert (parse_duration(documented, key=key) if duration else int(documented)) == schema, doc


def test_an_empty_file_means_the_defaults() -> None:
    assert parse({}, env={}).authentication == Config().authentication
    assert format_duration(Config().authentication.rate_limiter_duration) == "10m0s"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"authenticateRateLimiterMaxTries": 0}, "authenticateRateLimiterMaxTries: must be at least 1"),
        ({"authenticateRateLimiterDuration": "0s"}, "authenticateRateLimiterDuration: must be positive"),
        ({"loginHistoryMaximumEntries": 0}, "loginHistoryMaximumEntries: must be at least 1"),
        ({"authenticateRateLimiterDuration": "ten"}, "is not a duration"),
    ],
)
def test_bad_values_name_their_key(auth: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse({"authentication": auth}, env={})
