"""Lease-based leader election: several replicas, one acts.

One algorithm for the installer (threads) and the controller manager (asyncio):

* the holder renews ``spec.renewTime`` every ``renew`` seconds;
* a standby takes over once it has seen the same holder and renewTime for
  longer than the lease duration, measured on its **own** monotonic clock (so
  clock skew between pods does not matter);
* writes are conditional on ``resourceVersion``, so of two standbys only one
  wins (the other's write answers 409);
* a holder that cannot renew keeps acting only while no other replica can have
  taken over yet (80% of the duration since its last renewal);
* a clean shutdown releases the lease (no holder, 1 s duration) so a standby
  takes over at its next attempt.

The pinned ``kubernetes`` client ships an elector (``kubernetes.leaderelection``),
but it cannot be stopped, never releases the lease, sleeps in the calling
thread, and has no asyncio form; hence this one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubesphere.errors import KubeError
from kubesphere.resources import LEASES, Obj, now_micro
from kubesphere.rest import Rest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseOptions:
    name: str
    namespace: str
    identity: str
    #: Seconds a lease stays valid without renewal; a standby takes over after that.
    duration: float = 15.0
    #: Seconds between renewals by the holder (and attempts by a standby).
    renew: float = 5.0


class LeaderElector:
    def __init__(
        self,
        rest: Rest,
        options: LeaseOptions,
        *,
        on_change: Callable[[bool], None] | None = None,
        on_write: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rest = rest
        self.options = options
        self.on_change = on_change
        self.on_write = on_write
        self.clock = clock
        self.leading = threading.Event()
        self._seen: tuple[object, object] = (None, None)
        self._seen_at = clock()
        self._renewed_at: float | None = None
        self._standing_by = False

    # -- the API ---------------------------------------------------------------------------------
    def _read(self) -> Obj | None:
        o = self.options
        try:
            return self.rest.request("GET", LEASES.path(namespace=o.namespace, name=o.name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def _write(self, lease: Obj, *, create: bool) -> bool:
        """Create or replace (conditionally); False when another replica won the race."""
        o = self.options
        lease = {"apiVersion": LEASES.api_version, "kind": LEASES.kind, **lease}
        try:
            if create:
                self.rest.request("POST", LEASES.path(namespace=o.namespace), body=lease)
            else:
                self.rest.request("PUT", LEASES.path(namespace=o.namespace, name=o.name), body=lease)
        except KubeError as exc:
            if exc.status in (409, 422):
                return False
            raise
        if self.on_write:
            self.on_write()
        return True

    # -- one round -------------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One election round; True while this replica holds the lease.  Raises KubeError."""
        o = self.options
        lease = self._read()
        now = now_micro()
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
            return self._write(body, create=True)
        spec = lease.setdefault("spec", {})
        holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
        if (holder, renewed) != self._seen:
            self._seen, self._seen_at = (holder, renewed), self.clock()
        duration = float(spec.get("leaseDurationSeconds") or o.duration)
        expired = self.clock() - self._seen_at > duration
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
        return self._write(lease, create=False)

    def step(self) -> bool:
        """One round with its error handling; updates :attr:`leading` and returns it."""
        try:
            held = self.try_acquire_or_renew()
            if held:
                self._renewed_at = self.clock()
        except KubeError as exc:
            log.warning("leader election: %s", exc)
            renewed = self._renewed_at
            grace = 0.8 * self.options.duration
            held = self.leading.is_set() and renewed is not None and self.clock() - renewed < grace
        self._set_leading(held)
        if not held and not self._standing_by:
            o = self.options
            log.info(
                "standing by: another replica holds lease %s/%s (%s)", o.namespace, o.name, self._seen[0]
            )
        self._standing_by = not held
        return held

    def _set_leading(self, value: bool) -> None:
        if value == self.leading.is_set():
            return
        o = self.options
        if value:
            self.leading.set()
            log.info("became leader (lease %s/%s, identity %s)", o.namespace, o.name, o.identity)
        else:
            self.leading.clear()
            log.warning("lost leadership (lease %s/%s)", o.namespace, o.name)
        if self.on_change:
            self.on_change(value)

    def release(self) -> None:
        """Give the lease up if this replica holds it (on clean shutdown)."""
        o = self.options
        try:
            lease = self._read()
            if lease and (lease.get("spec") or {}).get("holderIdentity") == o.identity:
                lease["spec"].update(holderIdentity=None, leaseDurationSeconds=1, renewTime=now_micro())
                self._write(lease, create=False)
                log.info("released lease %s/%s", o.namespace, o.name)
        except KubeError as exc:
            log.warning("could not release the lease: %s", exc)
        self._set_leading(False)

    def pause(self) -> float:
        """Seconds until the next round: the renew period while leading, at most 2 s while standing by."""
        return self.options.renew if self.leading.is_set() else min(self.options.renew, 2.0)

    # -- the loops -------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Campaign and renew until ``stop`` (a thread's loop); releases the lease at the end."""
        while not stop.is_set():
            self.step()
            stop.wait(self.pause())
        self.release()

    async def run_until_lost(self) -> None:
        """Campaign until leading, then renew; returns when leadership is lost (asyncio)."""
        while True:
            was_leading = self.leading.is_set()
            held = await asyncio.to_thread(self.step)
            if was_leading and not held:
                return
            await asyncio.sleep(self.pause())
