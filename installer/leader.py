"""Lease-based leader election: several replicas, one acts.

The holder renews ``spec.renewTime`` every ``renew`` seconds.  Another replica
takes over once it has seen the same renewTime for longer than the lease
duration, measured on its own monotonic clock (so clock skew between pods does
not matter).  A replica that cannot renew within the lease duration stops
acting; one that shuts down cleanly releases the lease so a standby takes over
at its next attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from kubernetes import client

from installer.errors import TemporaryError
from installer.kube import Kube

log = logging.getLogger(__name__)


def _micro_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        identity: str,
        duration: float,
        renew: float,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.kube = kube
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew = renew
        self.on_change = on_change
        self.leading = threading.Event()
        self._seen: tuple[str | None, str | None] = (None, None)
        self._seen_at = time.monotonic()
        self._last_renewed = 0.0

    def _set_leading(self, value: bool) -> None:
        if value == self.leading.is_set():
            return
        if value:
            self.leading.set()
            log.info(
                "became leader (lease %s/%s, identity %s)", self.kube.namespace, self.name, self.identity
            )
        else:
            self.leading.clear()
            log.warning("lost leadership (lease %s/%s)", self.kube.namespace, self.name)
        if self.on_change:
            self.on_change(value)

    def try_acquire_or_renew(self) -> bool:
        """One election round; True while this replica holds the lease."""
        lease = self.kube.read_lease(self.name)
        now = _micro_now()
        if lease is None:
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.kube.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=int(self.duration),
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            return self.kube.write_lease(body, create=True)
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity
        renewed = spec.renew_time.isoformat() if spec.renew_time else None
        if (holder, renewed) != self._seen:
            self._seen = (holder, renewed)
            self._seen_at = time.monotonic()
        duration = float(spec.lease_duration_seconds or self.duration)
        expired = time.monotonic() - self._seen_at > duration
        if holder == self.identity:
            spec.renew_time = now
        elif not holder or expired:
            spec.holder_identity = self.identity
            spec.acquire_time = now
            spec.renew_time = now
            spec.lease_duration_seconds = int(self.duration)
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        else:
            return False
        lease.spec = spec
        return self.kube.write_lease(lease, create=False)

    def release(self) -> None:
        """Give the lease up (on clean shutdown) so a standby takes over at once."""
        if not self.leading.is_set():
            return
        try:
            lease = self.kube.read_lease(self.name)
            if lease and lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                self.kube.write_lease(lease, create=False)
                log.info("released lease %s/%s", self.kube.namespace, self.name)
        except TemporaryError as exc:
            log.warning("could not release lease: %s", exc)
        self._set_leading(False)

    def run(self, stop: threading.Event) -> None:
        """Campaign and renew until ``stop``; flips ``leading`` as leadership changes."""
        while not stop.is_set():
            try:
                held = self.try_acquire_or_renew()
                if held:
                    self._last_renewed = time.monotonic()
            except TemporaryError as exc:
                log.warning("leader election: %s", exc)
                # Keep acting only while no other replica can have taken over yet.
                held = self.leading.is_set() and time.monotonic() - self._last_renewed < 0.8 * self.duration
            self._set_leading(held)
            stop.wait(self.renew if held else min(self.renew, 2.0))
        self.release()
