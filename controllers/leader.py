"""Lease-based leader election for the controller manager (asyncio).

The same rules as the installer operator's elector: the holder renews
``spec.renewTime`` every ``renew`` seconds; a standby takes over once it has
seen the same holder and renewTime for longer than the lease duration on its
own monotonic clock (clock skew between pods does not matter); writes are
conditional on resourceVersion, so two standbys cannot both win.  A leader
that fails to renew for most of the lease duration reports the loss, and the
process exits so that no two replicas ever act at once; a clean shutdown
releases the lease so a standby takes over at its next attempt.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from controllers import metrics
from controllers.errors import ControllerError
from controllers.kube import Kube
from controllers.settings import LeaderElection

log = logging.getLogger(__name__)


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: Kube, options: LeaderElection) -> None:
        self.kube = kube
        self.options = options
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._seen: tuple[Any, Any] = (None, None)
        self._seen_at = time.monotonic()
        self._renewed_at = 0.0

    def try_acquire_or_renew(self) -> bool:
        """One election round (blocking; run in a thread); True while this replica holds the lease."""
        o = self.options
        lease = self.kube.read_lease(o.name, o.namespace)
        now = _micro_now()
        if lease is None:
            body = {
                "metadata": {"name": o.name, "namespace": o.namespace},
                "spec": {
                    "holderIdentity": o.identity,
                    "leaseDurationSeconds": int(o.duration),
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            }
            return self.kube.write_lease(body, namespace=o.namespace, create=True)
        spec = lease.setdefault("spec", {})
        holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
        if (holder, renewed) != self._seen:
            self._seen, self._seen_at = (holder, renewed), time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or o.duration)
        expired = time.monotonic() - self._seen_at > duration
        if holder == o.identity:
            spec["renewTime"] = now
        elif not holder or expired:
            spec.update(
                holderIdentity=o.identity,
                acquireTime=now,
                renewTime=now,
                leaseDurationSeconds=int(o.duration),
                leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1,
            )
        else:
            return False
        return self.kube.write_lease(lease, namespace=o.namespace, create=False)

    def release(self) -> None:
        """Give the lease up (blocking) if this replica holds it."""
        o = self.options
        try:
            lease = self.kube.read_lease(o.name, o.namespace)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == o.identity:
                lease["spec"].update(holderIdentity=None, leaseDurationSeconds=1, renewTime=_micro_now())
                self.kube.write_lease(lease, namespace=o.namespace, create=False)
                log.info("released lease %s/%s", o.namespace, o.name)
        except ControllerError as exc:
            log.warning("could not release the lease: %s", exc)

    async def run(self) -> None:
        """Campaign until leading, then renew; sets ``lost`` (and returns) when leadership goes."""
        o = self.options
        while True:
            try:
                held = await asyncio.to_thread(self.try_acquire_or_renew)
                if held:
                    self._renewed_at = time.monotonic()
            except ControllerError as exc:
                log.warning("leader election: %s", exc)
                held = self.leading.is_set() and time.monotonic() - self._renewed_at < 0.8 * o.duration
            if held and not self.leading.is_set():
                log.info("became leader (lease %s/%s, identity %s)", o.namespace, o.name, o.identity)
                metrics.LEADER.set(1)
                self.leading.set()
            elif not held and self.leading.is_set():
                log.error("lost leadership (lease %s/%s)", o.namespace, o.name)
                metrics.LEADER.set(0)
                self.lost.set()
                return
            elif not held:
                log.debug("standing by: lease %s/%s is held by another replica", o.namespace, o.name)
            await asyncio.sleep(o.renew if held else min(o.renew, 2.0))
