"""JSON calls to kube-apiserver over the generated client's connection pool (blocking).

The installer (threads) and the controllers (kopf's handler threads) both talk
to the API with plain dicts through :class:`Rest`: one path builder (the
resource catalog), a request timeout on every call, and every failure sorted by
the shared rule into :class:`~kubesphere.errors.KubeError` (an answer) or
:class:`~kubesphere.errors.KubeUnavailable` (none).  A package hands in
``translate`` to turn those into its own exception types, and ``observe`` to
count requests; nothing else differs between them.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, cast

import urllib3
from kubernetes import client
from kubernetes.client import ApiException

from kubesphere.errors import KubeError, KubeUnavailable
from kubesphere.resources import Obj, Resource

JSON = "application/json"
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
REQUEST_TIMEOUT = 30.0


def _same(exc: KubeError) -> Exception:
    return exc


class Rest:
    """Thread-safe (the generated client's pool is)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        timeout: float = REQUEST_TIMEOUT,
        translate: Callable[[KubeError], Exception] = _same,
        observe: Callable[[str, str], None] | None = None,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.translate = translate
        self.observe = observe

    # -- the one call --------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Iterable[tuple[str, str]] = (),
        content_type: str = JSON,
        timeout: float | None = None,
    ) -> Obj:
        """One request; raises :class:`KubeError` (untranslated) on anything but 2xx."""
        what = f"{method} {path}"
        try:
            m, url, headers, data, post = self.api.param_serialize(
                method,
                path,
                query_params=list(query),
                header_params={"Accept": JSON, "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(
                m, url, header_params=headers, body=data, post_params=post,
                _request_timeout=timeout or self.timeout,
            )  # fmt: skip
            response.read()  # type: ignore[no-untyped-call]
        except ApiException as exc:
            self._observe(method, "error" if not exc.status else f"{exc.status // 100}xx")
            if exc.status:
                raise KubeError.from_response(int(exc.status), exc.body, what=what) from exc
            raise KubeUnavailable(str(exc.reason or exc), what=what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._observe(method, "error")
            raise KubeUnavailable(str(exc) or type(exc).__name__, what=what) from exc
        status = int(response.status)
        self._observe(method, f"{status // 100}xx")
        if not 200 <= status < 300:
            raise KubeError.from_response(status, response.data, what=what)
        try:
            parsed = json.loads(response.data or b"{}")
        except ValueError:
            parsed = {}
        return cast(Obj, parsed if isinstance(parsed, dict) else {})

    def _observe(self, method: str, code: str) -> None:
        if self.observe:
            self.observe(method.lower(), code)

    def fail(self, exc: KubeError) -> NoReturn:
        """Raise ``exc`` as the package's own error type."""
        raise self.translate(exc) from exc

    def call(self, method: str, path: str, **kwargs: Any) -> Obj:
        """:meth:`request`, with failures translated."""
        try:
            return self.request(method, path, **kwargs)
        except KubeError as exc:
            self.fail(exc)

    def call_unless(self, status: int, method: str, path: str, **kwargs: Any) -> Obj | None:
        """:meth:`call`, with None for an answer of ``status`` (404 on a read, 409 on a create)."""
        try:
            return self.request(method, path, **kwargs)
        except KubeError as exc:
            if exc.status == status:
                return None
            self.fail(exc)

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, res: Resource, name: str, *, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        return self.call_unless(404, "GET", res.path(namespace=namespace, name=name))

    def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
        page_size: int = 500,
    ) -> list[Obj]:
        """Every item (paged with ``continue``), with kind and apiVersion filled in."""
        items, _ = self.list_with_version(
            res, namespace=namespace, labels=labels, fields=fields, page_size=page_size
        )
        return items

    def list_with_version(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
        page_size: int = 500,
    ) -> tuple[builtins.list[Obj], str]:
        query = [("labelSelector", labels)] if labels else []
        query += [("fieldSelector", fields)] if fields else []
        items: builtins.list[Obj] = []
        cont = ""
        while True:
            page = self.call(
                "GET",
                res.path(namespace=namespace),
                query=[*query, ("limit", str(page_size)), *([("continue", cont)] if cont else [])],
            )
            for item in page.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion") or "")

    # -- writes --------------------------------------------------------------------------------------
    def create(self, res: Resource, body: Obj, *, namespace: str | None = None) -> Obj | None:
        """Create ``body``; None if an object of that name already exists (409)."""
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        return self.call_unless(409, "POST", res.path(namespace=namespace), body=body)

    def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str = "",
    ) -> Obj:
        """A patch (JSON merge by default); include ``metadata.resourceVersion`` to make it conditional."""
        path = res.path(namespace=namespace, name=name, subresource=subresource)
        return self.call("PATCH", path, body=patch, content_type=PATCH_TYPES[patch_type])

    def replace(self, res: Resource, body: Obj, *, namespace: str | None = None) -> Obj:
        path = res.path(namespace=namespace, name=body["metadata"]["name"])
        return self.call("PUT", path, body={"apiVersion": res.api_version, "kind": res.kind, **body})

    def delete(
        self, res: Resource, name: str, *, namespace: str | None = None, propagation: str = "Background"
    ) -> bool:
        """Delete; False if it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        return (
            self.call_unless(404, "DELETE", res.path(namespace=namespace, name=name), body=body) is not None
        )
