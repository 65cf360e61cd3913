"""Benchmark of ks-apiserver (``make bench-apiserver``).

On the local cluster with a real redis-server, in one run:

* **proxy overhead**: GET of one namespace and LIST of 50 ConfigMaps through
  ks-apiserver's ``/api`` proxy (bearer token, KubeSphere RBAC) against the
  same call straight to kube-apiserver (client certificate).  Sequential
  latency, interleaved so drift hits both alike (p50/p90/p99 and the p50
  ratio; aim <= 1.5x), then throughput with 16 concurrent clients.
* **cached lists at scale**: 10,000 Users and 5,000 Namespaces are created;
  once the server's informers hold them, token-authenticated
  ``GET /kapis/resources.kubesphere.io/v1alpha3/namespaces?limit=10`` and
  ``GET /kapis/iam.kubesphere.io/v1alpha2/users?limit=10`` (aim p50 < 20 ms),
  with kube-apiserver's own paged ``LIST ?limit=10`` of the same resources as
  the baseline.
* **the console's permission calls** at that scale (every user holds a GlobalRoleBinding, so
  10,001 of them): ``/users/{u}/globalroles`` for the caller and for another user, and
  ``/namespaces/{ns}/members/{u}/roles`` (a Role aggregating two templates).
* **resident memory** of the server before and after the objects arrive.

Everything it creates carries a per-run label and is deleted at the end.
Writes ``bench/results/apiserver.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import yaml
from kubernetes import dynamic

from apiserver import kube
from bench import emit
from devcluster import kube as devkube
from devcluster.cluster import LocalCluster
from devcluster.services import RedisServer, free_port

REPO = Path(__file__).resolve().parent.parent
CORE_FILES = REPO / "roles" / "ks_core" / "files"
PASSWORD = "Bench-P@ss1"
CLIENT = {"client_id": "kubesphere", "client_secret": "kubesphere"}


def apply_platform(kubeconfig: Path) -> None:
    """CRDs and built-in roles, as the core role applies them (idempotent)."""
    api = devkube.api_client(kubeconfig)
    try:
        for path in sorted((CORE_FILES / "crds").glob("*.yaml")):
            devkube.apply_crd(api, path)
        dyn = dynamic.DynamicClient(api)
        for path in sorted((CORE_FILES / "iam").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
                    res.server_side_apply(body=doc, field_manager="ks-bench", force_conflicts=True)
    finally:
        api.close()


def rss_mib(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (robust to other load on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def create_platform_admin(client: kube.KubeClient, name: str, labels: dict[str, str]) -> None:
    """An active User ``name`` (password ``PASSWORD``) bound to platform-admin, both labelled ``labels``."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    await client.create(kube.USERS, {"metadata": {"name": name, "labels": labels},
                                     "spec": {"email": f"{name}@bench.local", "password": hashed},
                                     "status": {"state": "Active"}})  # fmt: skip
    await client.create(kube.GLOBALROLEBINDINGS, {
        "metadata": {"name": f"{name}-platform-admin", "labels": {**labels, kube.USER_REF_LABEL: name}},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
        "roleRef": {"apiGroup": "iam.kubesphere.io", "kind": "GlobalRole", "name": "platform-admin"},
    })  # fmt: skip


async def server_cpu_ms(pid: int, target: Target, path: str, *, calls: int) -> float:
    before = cpu_seconds(pid)
    for _ in range(calls):
        await target.call(path)
    return round((cpu_seconds(pid) - before) / calls * 1000, 3)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(samples, 0.5), "p90_ms": pct(samples, 0.9), "p99_ms": pct(samples, 0.99),
            "mean_ms": round(statistics.fmean(samples) * 1000, 3)}  # fmt: skip


class Target:
    """One way of calling: a base URL plus the headers and TLS it needs."""

    def __init__(self, session: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
        self.session, self.base, self.headers = session, base, headers

    async def call(self, path: str) -> float:
        start = time.perf_counter()
        async with self.session.get(self.base + path, headers=self.headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {self.base}{path}: {resp.status}")
        return time.perf_counter() - start


async def compare(targets: dict[str, Target], path: str, *, samples: int) -> dict[str, Any]:
    for target in targets.values():  # warm connections and caches
        for _ in range(20):
            await target.call(path)
    results: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(samples):
        for name, target in targets.items():
            results[name].append(await target.call(path))
    return {name: summary(values) for name, values in results.items()}


async def throughput(target: Target, path: str, *, clients: int = 16, seconds: float = 5.0) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await target.call(path)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return round(done / (time.perf_counter() - start), 1)


async def bounded(jobs: list[Callable[[], Awaitable[Any]]], *, concurrency: int = 32) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[Any]]) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    await job()
                    return
                except kube.KubeError as exc:
                    if exc.status == 409 or exc.status == 404:
                        return
                    if not exc.temporary or attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))

    await asyncio.gather(*(one(j) for j in jobs))


async def wait_cached(server: Target, what: str, want: int, timeout: float = 600) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        async with server.session.get(server.base + "/metrics", headers=server.headers) as resp:
            text = await resp.text()
        for line in text.splitlines():
            if (
                line.startswith(f'ks_apiserver_cache_objects{{resource="{what}"}}')
                and float(line.split()[-1]) >= want
            ):
                return round(time.monotonic() - start, 1)
        await asyncio.sleep(1)
    raise TimeoutError(f"the server's {what} cache never reached {want}")


async def scenario(
    args: argparse.Namespace, kubeconfig: Path, url: str, pid: int, run_label: str
) -> dict[str, Any]:
    client = kube.KubeClient.from_kubeconfig(kubeconfig)
    result: dict[str, Any] = {}
    try:
        admin = f"bench-admin-{run_label}"
        labels = {"ks-bench": run_label}
        await create_platform_admin(client, admin, labels)
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        ns = f"bench-{run_label}"
        await client.create(kube.NAMESPACES, {"metadata": {"name": ns, "labels": labels}})
        await bounded([
            lambda i=i: client.create(kube.CONFIGMAPS, {"metadata": {"name": f"cm-{i}"},
                                                        "data": {"k": "v" * 200}}, namespace=ns)
            for i in range(50)
        ])  # fmt: skip

        direct_conn = aiohttp.TCPConnector(ssl=client.ssl_context, limit=64)
        async with aiohttp.ClientSession(connector=direct_conn) as direct_s, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as ks_s:  # fmt: skip
            token = ""
            for _ in range(100):
                async with ks_s.post(
                    f"{url}/oauth/token",
                    data={**CLIENT, "grant_type": "password", "username": admin, "password": PASSWORD},
                ) as r:
                    if r.status == 200:
                        token = (await r.json())["access_token"]
                        break
                await asyncio.sleep(0.2)
            if not token:
                raise RuntimeError("the bench admin could not log in")
            direct = Target(direct_s, client.server, client.headers())
            proxied = Target(ks_s, url, {"Authorization": f"Bearer {token}"})
            targets = {"direct": direct, "proxied": proxied}

            get_path = f"/api/v1/namespaces/{ns}"
            list_path = f"/api/v1/namespaces/{ns}/configmaps"
            get = await compare(targets, get_path, samples=args.samples)
            lst = await compare(targets, list_path, samples=args.samples)
            result["proxy"] = {
                "get_namespace": {
                    **get,
                    "p50_ratio": round(get["proxied"]["p50_ms"] / get["direct"]["p50_ms"], 2),
                },
                "list_50_configmaps": {
                    **lst,
                    "p50_ratio": round(lst["proxied"]["p50_ms"] / lst["direct"]["p50_ms"], 2),
                },
                "samples": args.samples,
                "server_cpu_ms_per_request": {
                    "get_proxied": await server_cpu_ms(pid, proxied, get_path, calls=args.samples),
                    "list_proxied": await server_cpu_ms(pid, proxied, list_path, calls=args.samples),
                },
                "throughput_16_clients_rps": {
                    "get_direct": await throughput(direct, get_path),
                    "get_proxied": await throughput(proxied, get_path),
                    "list_direct": await throughput(direct, list_path),
                    "list_proxied": await throughput(proxied, list_path),
                },
            }
            result["rss_mib_before_scale"] = rss_mib(pid)

            # -- scale: users and namespaces -------------------------------------------------
            started = time.monotonic()
            await bounded([
                lambda i=i: client.create(kube.USERS, {
                    "metadata": {"name": f"bench-u{i}-{run_label}", "labels": labels},
                    "spec": {"email": f"u{i}-{run_label}@bench.local", "password": hashed},
                    "status": {"state": "Active"}})
                for i in range(args.users)
            ])  # fmt: skip
            # Each user holds a global role, as console-created users do: 10,000 GlobalRoleBindings.
            await bounded([
                lambda i=i: client.create(kube.GLOBALROLEBINDINGS, {
                    "metadata": {"name": f"bench-u{i}-{run_label}-platform-regular",
                                 "labels": {**labels, kube.USER_REF_LABEL: f"bench-u{i}-{run_label}"}},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": f"bench-u{i}-{run_label}"}],
                    "roleRef": {"apiGroup": "iam.kubesphere.io", "kind": "GlobalRole",
                                "name": "platform-regular"}})
                for i in range(args.users)
            ])  # fmt: skip
            names = [f"bench-n{i}-{run_label}" for i in range(args.namespaces)]
            await bounded([
                lambda n=n: client.create(kube.NAMESPACES, {"metadata": {"name": n, "labels": labels}})
                for n in names
            ])  # fmt: skip
            result["scale"] = {"users": args.users, "namespaces": args.namespaces,
                               "create_seconds": round(time.monotonic() - started, 1)}  # fmt: skip
            await wait_cached(proxied, "users.iam.kubesphere.io", args.users)
            await wait_cached(proxied, "namespaces", args.namespaces)
            await wait_cached(proxied, "globalrolebindings.iam.kubesphere.io", args.users)
            result["scale"]["cached_after_create_seconds"] = round(time.monotonic() - started, 1)

            cached: dict[str, Any] = {}
            for name, path, baseline in (
                ("namespaces", "/kapis/resources.kubesphere.io/v1alpha3/namespaces?limit=10",
                 "/api/v1/namespaces?limit=10"),
                ("users", "/kapis/iam.kubesphere.io/v1alpha2/users?limit=10",
                 "/apis/iam.kubesphere.io/v1alpha2/users?limit=10"),
            ):  # fmt: skip
                ks = await compare({"proxied": proxied}, path, samples=args.list_samples)
                base = await compare({"direct": direct}, baseline, samples=args.list_samples)
                cpu = await server_cpu_ms(pid, proxied, path, calls=50)
                cached[name] = {"kapis": ks["proxied"], "kube_apiserver_paged_list": base["direct"],
                                "path": path.split("?")[0], "server_cpu_ms_per_request": cpu}  # fmt: skip
            result["cached_list_limit_10"] = cached

            # -- the console's permission calls at that scale ---------------------------------
            # A project Role aggregating two templates of the namespace, bound to the admin.
            rbac = "rbac.authorization.k8s.io"
            for tpl in ("role-template-view-basic", "role-template-view-members"):
                await client.create(
                    kube.ROLES,
                    {
                        "metadata": {
                            "name": tpl,
                            "namespace": ns,
                            "annotations": {"iam.kubesphere.io/role-template-rules": '{"members": "view"}'},
                        },
                        "rules": [],
                    },
                    namespace=ns,
                )
            await client.create(
                kube.ROLES,
                {
                    "metadata": {
                        "name": "viewer",
                        "namespace": ns,
                        "annotations": {
                            "iam.kubesphere.io/aggregation-roles": json.dumps(
                                ["role-template-view-basic", "role-template-view-members"]
                            )
                        },
                    },
                    "rules": [],
                },
                namespace=ns,
            )
            await client.create(kube.ROLEBINDINGS, {"metadata": {"name": f"{admin}-viewer", "namespace": ns},
                "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "viewer"},
                "subjects": [{"apiGroup": rbac, "kind": "User", "name": admin}]}, namespace=ns)  # fmt: skip
            iam = "/kapis/iam.kubesphere.io/v1alpha2"
            middle = f"bench-u{args.users // 2}-{run_label}"
            permission_paths = {
                "own_globalroles": f"{iam}/users/{admin}/globalroles",
                "a_users_globalroles": f"{iam}/users/{middle}/globalroles",
                "namespace_member_roles": f"{iam}/namespaces/{ns}/members/{admin}/roles",
            }
            for path in permission_paths.values():  # until the server has the Roles and the binding
                for _ in range(100):
                    async with ks_s.get(url + path, headers=proxied.headers) as r:
                        if r.status == 200 and await r.json():
                            break
                    await asyncio.sleep(0.1)
            permissions: dict[str, Any] = {}
            for name, path in permission_paths.items():
                got = await compare({"proxied": proxied}, path, samples=args.list_samples)
                cpu = await server_cpu_ms(pid, proxied, path, calls=50)
                permissions[name] = {**got["proxied"], "path": path.replace(run_label, "<run>"),
                                     "server_cpu_ms_per_request": cpu}  # fmt: skip
            result["permissions"] = {"global_role_bindings": args.users + 1, **permissions}
            result["rss_mib_after_scale"] = rss_mib(pid)
    finally:
        started = time.monotonic()
        try:
            await cleanup(client, f"ks-bench={run_label}")
            result["cleanup_seconds"] = round(time.monotonic() - started, 1)
        except kube.KubeError as exc:  # the measurements stand; say how to finish the clean-up
            print(
                f"clean-up failed ({exc.message}); run `python -m bench.apiserver --cleanup`", file=sys.stderr
            )
        await client.close()
    return result


async def cleanup(client: kube.KubeClient, selector: str) -> None:
    """Delete what a run created (``selector``: its label); no finalizer may keep a User."""
    # One by one: a deletecollection of 10,000 objects outlives kube-apiserver's request timeout.
    for res in (kube.GLOBALROLEBINDINGS, kube.USERS, kube.NAMESPACES):
        items = await client.list(res, label_selector=selector)
        await bounded([lambda r=res, i=i: client.delete(r, i["metadata"]["name"]) for i in items])
    leftovers = await client.list(kube.USERS, label_selector=selector)
    await bounded([
        lambda u=u: client.patch(kube.USERS, u["metadata"]["name"], {"metadata": {"finalizers": None}})
        for u in leftovers if u["metadata"].get("finalizers")
    ])  # fmt: skip


def cleanup_all(kubeconfig: Path) -> None:
    async def go() -> None:
        client = kube.KubeClient.from_kubeconfig(kubeconfig)
        try:
            await cleanup(client, "ks-bench")
        finally:
            await client.close()

    asyncio.run(go())


@contextlib.contextmanager
def ks_apiserver(kubeconfig: Path, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A ks-apiserver on a free port with its own redis-server: the process and its URL."""
    with RedisServer().start() as redis:
        config = {
            "authentication": {"multipleLogin": True, "authenticateRateLimiterMaxTries": 10, "oauthOptions": {
                "accessTokenMaxAge": "2h", "accessTokenInactivityTimeout": "30m",
                "clients": [{"name": "kubesphere", "secret": "kubesphere"}]}},
            "cache": {"type": "redis", "options": {"host": "127.0.0.1", "port": redis.port}},
        }  # fmt: skip
        (workdir / "kubesphere.yaml").write_text(yaml.safe_dump(config))
        port = free_port()
        env = {**os.environ, "KUBESPHERE_JWT_SECRET": secrets.token_urlsafe(32),
               "KUBESPHERE_CACHE_PASSWORD": redis.password, "KS_APISERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
        log = workdir / "apiserver.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "apiserver.cli", "--config", str(workdir / "kubesphere.yaml"),
                 "--kubeconfig", str(kubeconfig), "--bind", f"127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/readyz", timeout=2).status == 200:
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"ks-apiserver did not start; see {log}") from None
                    time.sleep(0.2)
            yield proc, url
        finally:
            proc.terminate()
            proc.wait(20)


def run(args: argparse.Namespace) -> dict[str, Any]:
    info = LocalCluster().up(log=False)
    apply_platform(info.kubeconfig)
    run_label = uuid.uuid4().hex[:6]
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"ks-bench-apiserver-{run_label}"
    workdir.mkdir(parents=True)
    with ks_apiserver(info.kubeconfig, workdir) as (proc, url):
        started_rss = rss_mib(proc.pid)
        result = asyncio.run(scenario(args, info.kubeconfig, url, proc.pid, run_label))
    return {
        "benchmark": "apiserver",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rss_mib_at_start": started_rss,
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="ks-apiserver benchmark")
    parser.add_argument("--samples", type=int, default=500, help="sequential calls per proxy measurement")
    parser.add_argument("--list-samples", type=int, default=300, help="calls per cached-list measurement")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=5_000)
    parser.add_argument("--no-write", action="store_true", help="print only (for trial runs at small scale)")
    parser.add_argument("--cleanup", action="store_true", help="only delete what earlier runs left behind")
    args = parser.parse_args()
    if args.cleanup:
        cleanup_all(LocalCluster().up(log=False).kubeconfig)
        return
    result = run(args)
    emit("apiserver", result, write=not args.no_write)


if __name__ == "__main__":
    main()
