"""OpenID Connect and the Kubernetes token webhook: ``/oauth/authorize``, ``/keys``, ``/authenticate``.

* ``GET|POST /oauth/authorize`` — the authorization endpoint, for a caller who
  is already logged in (a bearer token or basic credentials); anyone else gets
  401 ``login_required``.  ``response_type=code`` redirects to the client's
  ``redirect_uri`` with a one-time code (valid 5 minutes) that the token
  endpoint exchanges (``grant_type=code``, with the client's credentials);
  ``response_type=token`` redirects with an access token in the fragment.  The
  URI must be one of the client's ``redirectURIs`` (``*`` allows any).  With
  the ``openid`` scope the token answer carries an RS256 ``id_token``.
* ``GET /oauth/keys`` — the JWKS that checks ID tokens (``apiserver.signing``).
* ``POST /oauth/authenticate`` — a TokenReview webhook (kube-apiserver's
  ``--authentication-token-webhook-config-file``): a valid access token of an
  active user is ``authenticated`` with the username and uid, as KubeSphere
  answers.  A token that does not verify is ``authenticated: false`` with the
  reason (KubeSphere answers 400; both make kube-apiserver refuse the token,
  this one lets it cache the refusal); a body that is no TokenReview is 400.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from aiohttp import web

from apiserver import authn, kube
from apiserver.context import CONTEXT, USER_KEY, Context
from apiserver.errors import APIError
from apiserver.identity import UserInfo
from apiserver.signing import Signer
from apiserver.tokens import TokenError

CODE = "code"
CODE_LIFETIME = 300.0


def signer(ctx: Context) -> Signer:
    if ctx.signer is None:
        ctx.signer = Signer(ctx.config.authentication.oauth)
    return ctx.signer


def _error(status: int, error: str, description: str = "") -> web.Response:
    body = {"error": error, **({"error_description": description} if description else {})}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def redirect_allowed(uris: tuple[str, ...], uri: str) -> bool:
    return "*" in uris or uri in uris


async def authorize(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    form: dict[str, str] = dict(request.query)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    clients = {c.name: c for c in ctx.config.authentication.oauth.clients}
    client = clients.get(form.get("client_id", ""))
    if client is None:
        return _error(401, "invalid_client", "the OAuth client was not found")
    redirect = form.get("redirect_uri", "")
    if not redirect or not redirect_allowed(client.redirect_uris, redirect):
        return _error(400, "invalid_request", "redirect_uri is not one of the client's redirectURIs")
    user: UserInfo = request[USER_KEY]
    if user.anonymous:
        return _error(401, "login_required")
    state = form.get("state", "")
    response_type = form.get("response_type", "")
    if response_type == CODE:
        scope = form.get("scope", "")
        extra = {"client_id": [client.name], "scope": [scope], "nonce": [form.get("nonce", "")]}
        code = await ctx.tokens.issue(user.name, token_type=CODE, lifetime=CODE_LIFETIME, extra=extra)
        query = {"code": code, **({"state": state} if state else {})}
        sep = "&" if "?" in redirect else "?"
        raise web.HTTPFound(redirect + sep + urllib.parse.urlencode(query))
    if response_type == "token":
        obj = ctx.caches[kube.USERS].get(user.name) or {}
        pair = await ctx.tokens.issue_pair(user.name, extra=authn.token_extra(obj) if obj else None)
        fragment = {"access_token": pair["access_token"], "token_type": "Bearer"}
        if "expires_in" in pair:
            fragment["expires_in"] = str(pair["expires_in"])
        if state:
            fragment["state"] = state
        raise web.HTTPFound(redirect + "#" + urllib.parse.urlencode(fragment))
    return _error(400, "unsupported_response_type")


async def code_grant(request: web.Request, code: str, client_id: str) -> web.Response:
    """The token endpoint's ``grant_type=code``: one use, by the client it was issued to."""
    ctx = request.app[CONTEXT]
    try:
        claims = await ctx.tokens.verify(code)
    except TokenError as exc:
        return _error(400, "invalid_grant", str(exc))
    if claims.token_type != CODE or claims.extra.get("client_id") != [client_id]:
        return _error(400, "invalid_grant", "not a code issued to this client")
    await ctx.tokens.revoke(code)
    user = ctx.caches[kube.USERS].get(claims.username)
    if user is None:
        return _error(400, "invalid_grant", f'user.iam.kubesphere.io "{claims.username}" not found')
    body = await ctx.tokens.issue_pair(claims.username, extra=authn.token_extra(user))
    if "openid" in (claims.extra.get("scope") or [""])[0].split():
        nonce = (claims.extra.get("nonce") or [""])[0]
        body["id_token"] = signer(ctx).id_token(
            user, audience=client_id, lifetime=ctx.tokens.access_lifetime, nonce=nonce
        )
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def keys(request: web.Request) -> web.Response:
    return web.json_response(signer(request.app[CONTEXT]).jwks())


async def authenticate(request: web.Request) -> web.Response:
    """The TokenReview webhook."""
    ctx = request.app[CONTEXT]
    try:
        review = json.loads(await request.read())
    except ValueError:
        raise APIError(400, "the body is not a TokenReview (JSON)") from None
    spec = review.get("spec") if isinstance(review, dict) else None
    token = spec.get("token") if isinstance(spec, dict) else None
    if not isinstance(token, str) or not token:
        raise APIError(400, "TokenReview: spec.token is required")
    status: dict[str, Any]
    try:
        user = await authn.verify_bearer(ctx, token)
    except APIError as exc:
        if exc.code != 401:
            raise
        status = {"authenticated": False, "error": exc.message}
    else:
        status = {"authenticated": True, "user": {"username": user.name, "uid": user.uid}}
    return web.json_response(
        {
            "apiVersion": review.get("apiVersion") or "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "status": status,
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_route("GET", "/oauth/authorize", authorize)
    app.router.add_route("POST", "/oauth/authorize", authorize)
    app.router.add_get("/oauth/keys", keys)
    app.router.add_post("/oauth/authenticate", authenticate)
