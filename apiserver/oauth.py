"""``/oauth``: the token endpoint (password, refresh_token and code grants), logout, userinfo, discovery.

The authorization endpoint, the JWKS and the TokenReview webhook are in
``apiserver.oidc``.

The token endpoint takes a form body only (anything else is 415) and checks,
in KubeSphere's order: the OAuth client (401 ``invalid_client``), the grant
type (400 ``unsupported_grant_type``), then the grant.  Password-grant
failures are 400 ``invalid_grant`` — except a user the rate limiter blocked,
who gets 429 even with the right password.  Successful logins and wrong
passwords of existing users leave a LoginRecord; refresh grants do not.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from apiserver import authn, kube, loginrecords, oidc
from apiserver.context import CONTEXT, USER_KEY
from apiserver.identity import UserInfo
from apiserver.tokens import REFRESH_TOKEN, TokenError

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"


def oauth_error(status: int, error: str, description: str = "") -> web.Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


async def token(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if request.content_type != FORM:
        return web.Response(status=415, text="415: Unsupported Media Type", content_type="text/plain")
    form = await request.post()
    field: dict[str, str] = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    clients = {c.name: c for c in ctx.config.authentication.oauth.clients}
    client = clients.get(field.get("client_id", ""))
    if client is None:
        return oauth_error(401, "invalid_client", "the OAuth client was not found")
    if client.secret != field.get("client_secret", ""):
        return oauth_error(401, "invalid_client", "invalid client credential")
    grant = field.get("grant_type", "")
    if grant == "password":
        return await _password_grant(request, field.get("username", ""), field.get("password", ""))
    if grant == "refresh_token":
        return await _refresh_grant(request, field.get("refresh_token", ""))
    if grant == oidc.CODE:
        return await oidc.code_grant(request, field.get("code", ""), client.name)
    return oauth_error(400, "unsupported_grant_type")


async def _password_grant(request: web.Request, username: str, password: str) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        user = await authn.check_password(ctx, username, password)
    except authn.AuthenticationError as exc:
        if exc.incorrect_password:
            found = authn.find_user(ctx, username) if username else None
            if found is not None:
                await loginrecords.record(
                    ctx, request, found["metadata"]["name"],
                    login_type=loginrecords.TOKEN, success=False, reason=loginrecords.INCORRECT_PASSWORD,
                )  # fmt: skip
        return oauth_error(429 if exc.rate_limited else 400, "invalid_grant", exc.message)
    name = user["metadata"]["name"]
    body = await ctx.tokens.issue_pair(name, extra=authn.token_extra(user))
    await loginrecords.record(
        ctx, request, name, login_type=loginrecords.TOKEN, success=True, reason=loginrecords.SUCCESS
    )
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _refresh_grant(request: web.Request, refresh_token: str) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        claims = await ctx.tokens.verify(refresh_token)
    except TokenError as exc:
        return oauth_error(400, "invalid_grant", str(exc))
    if claims.token_type != REFRESH_TOKEN:
        return oauth_error(400, "invalid_grant", "invalid token type: not a refresh token")
    user = ctx.caches[kube.USERS].get(claims.username)
    if user is None:
        return oauth_error(400, "invalid_grant", f'user.iam.kubesphere.io "{claims.username}" not found')
    body = await ctx.tokens.issue_pair(claims.username, extra=authn.token_extra(user))
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def logout(request: web.Request) -> web.Response:
    """Revoke every token of the caller (on every replica: the tokens live in the shared cache)."""
    ctx = request.app[CONTEXT]
    user: UserInfo = request[USER_KEY]
    if not user.anonymous:
        await ctx.tokens.revoke_all(user.name)
    redirect = request.query.get("post_logout_redirect_uri")
    if redirect:
        raise web.HTTPFound(redirect)
    return web.json_response({"message": "success"})


async def userinfo(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user: UserInfo = request[USER_KEY]
    obj = None if user.anonymous else ctx.caches[kube.USERS].get(user.name)
    if obj is None:
        return oauth_error(401, "login_required")
    spec: dict[str, Any] = obj.get("spec") or {}
    return web.json_response(
        {
            "sub": user.name,
            "name": user.name,
            "preferred_username": user.name,
            "email": spec.get("email", ""),
            "locale": spec.get("lang", ""),
        }
    )


async def discovery(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    base = f"{request.scheme}://{request.host}"
    return web.json_response(
        {
            "issuer": ctx.config.authentication.oauth.issuer,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/oauth/keys",
            "userinfo_endpoint": f"{base}/oauth/userinfo",
            "end_session_endpoint": f"{base}/oauth/logout",
            "response_types_supported": ["code", "token"],
            "subject_types_supported": ["public"],
            "grant_types_supported": ["authorization_code", "password", "refresh_token"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "iat",
                "exp",
                "email",
                "locale",
                "name",
                "preferred_username",
                "nonce",
            ],
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/oauth/logout", logout)
    app.router.add_get("/oauth/userinfo", userinfo)
    app.router.add_get("/oauth/.well-known/openid-configuration", discovery)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    oidc.setup(app)
