"""The RSA key that signs ID tokens, and its public half as the JWKS (``/oauth/keys``).

Access, refresh and code tokens are HS256 with ``jwtSecret`` (``apiserver.tokens``);
ID tokens are RS256 so that a relying party can check them with the public key
alone, as KubeSphere does.  The key comes from ``oauthOptions.signKey`` (a PEM
file) or ``signKeyData`` (the PEM, or the PEM base64-encoded); without either
the process generates one, which then differs between replicas (configure one
key for more than one replica).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesphere.config import ConfigError, OAuthOptions

ID_TOKEN = "id_token"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_key(options: OAuthOptions) -> rsa.RSAPrivateKey:
    """The configured RSA private key, or a new 2048-bit one; ConfigError for one that is not RSA."""
    if options.sign_key:
        pem = Path(options.sign_key).read_bytes()
    elif options.sign_key_data:
        data = options.sign_key_data.strip().encode()
        if not data.startswith(b"-----"):
            try:
                data = base64.b64decode(data, validate=True)
            except binascii.Error:
                raise ConfigError("authentication.oauthOptions.signKeyData: neither PEM nor base64") from None
        pem = data
    else:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise ConfigError(f"authentication.oauthOptions.signKey: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("authentication.oauthOptions.signKey: not an RSA private key")
    return key


class Signer:
    """Signs ID tokens; ``jwks()`` publishes the key that checks them."""

    def __init__(self, options: OAuthOptions, key: rsa.RSAPrivateKey | None = None) -> None:
        self.issuer = options.issuer
        self.key = key or load_key(options)
        numbers = self.key.public_key().public_numbers()
        self.jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "n": _b64(numbers.n), "e": _b64(numbers.e)}
        # RFC 7638 thumbprint: the members in lexicographic order, no spaces.
        canonical = json.dumps({"e": self.jwk["e"], "kty": "RSA", "n": self.jwk["n"]}, separators=(",", ":"))
        self.jwk["kid"] = (
            base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self.jwk)]}

    def id_token(self, user: dict[str, Any], *, audience: str, lifetime: float, nonce: str = "") -> str:
        name = str(user["metadata"]["name"])
        spec = user.get("spec") or {}
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": name, "aud": audience, "iat": now, "token_type": ID_TOKEN,
            "name": name, "preferred_username": name, "email": str(spec.get("email") or ""),
            "locale": str(spec.get("lang") or ""),
        }  # fmt: skip
        if lifetime > 0:
            claims["exp"] = now + int(lifetime)
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.jwk["kid"]})
