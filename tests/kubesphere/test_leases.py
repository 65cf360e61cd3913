"""The Lease elector's rules, on an in-memory Lease with resourceVersion checks and a fake clock.

The elector against the real API server is covered by the installer's and the
controller manager's takeover tests; these pin the algorithm itself.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from kubesphere.errors import KubeError, KubeUnavailable
from kubesphere.leases import LeaderElector, LeaseOptions
from kubesphere.rest import Rest


class LeaseServer:
    """One Lease, answering GET/POST/PUT as kube-apiserver does (409 on a stale resourceVersion)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False
        self.writes = 0

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> dict[str, Any]:
        if self.down:
            raise KubeUnavailable("connection refused")
        if method == "GET":
            if self.lease is None:
                raise KubeError(404, {"message": "not found"})
            return copy.deepcopy(self.lease)
        if method == "POST" and self.lease is not None:
            raise KubeError(409, {"message": "already exists"})
        if method == "PUT":
            assert self.lease is not None
            if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
                raise KubeError(409, {"message": "the object has been modified"})
        self.version += 1
        self.writes += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> LeaseServer:
    return LeaseServer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def elector(
    server: LeaseServer, clock: Clock, identity: str, changes: list[bool] | None = None
) -> LeaderElector:
    options = LeaseOptions(name="lease", namespace="ns", identity=identity, duration=15, renew=5)
    return LeaderElector(
        cast(Rest, server), options, clock=clock, on_change=(changes.append if changes is not None else None)
    )


def holder(server: LeaseServer) -> str | None:
    assert server.lease is not None
    return cast(str | None, server.lease["spec"].get("holderIdentity"))


def test_first_replica_creates_the_lease_and_leads(server: LeaseServer, clock: Clock) -> None:
    changes: list[bool] = []
    a = elector(server, clock, "a", changes)
    assert a.step() is True
    assert holder(server) == "a" and changes == [True]
    assert server.lease is not None and server.lease["spec"]["leaseTransitions"] == 0
    assert a.pause() == 5


def test_a_standby_waits_a_full_duration_on_its_own_clock(server: LeaseServer, clock: Clock) -> None:
    a, b = elector(server, clock, "a"), elector(server, clock, "b")
    a.step()
    assert b.step() is False and b.pause() == 2.0
    clock.now += 10
    a.step()  # renewed: b's wait starts again
    clock.now += 10
    assert b.step() is False
    clock.now += 16  # a silent for longer than the duration
    assert b.step() is True
    assert holder(server) == "b"
    assert server.lease is not None and server.lease["spec"]["leaseTransitions"] == 1
    # The old leader learns at its next round.
    assert a.step() is False and not a.leading.is_set()


def test_two_standbys_never_both_win(server: LeaseServer, clock: Clock) -> None:
    a, b, c = elector(server, clock, "a"), elector(server, clock, "b"), elector(server, clock, "c")
    a.step()
    b.step()
    c.step()
    clock.now += 16
    # Both read the expired lease, then both write: the second write carries a stale version.
    lease_b, lease_c = b._read(), c._read()
    assert lease_b is not None and lease_c is not None
    won = [b._write(_taken(lease_b, "b"), create=False), c._write(_taken(lease_c, "c"), create=False)]
    assert won == [True, False]
    assert holder(server) == "b"


def _taken(lease: dict[str, Any], who: str) -> dict[str, Any]:
    lease["spec"]["holderIdentity"] = who
    return lease


def test_release_hands_over_at_the_next_attempt(server: LeaseServer, clock: Clock) -> None:
    changes: list[bool] = []
    a, b = elector(server, clock, "a", changes), elector(server, clock, "b")
    a.step()
    b.step()
    a.release()
    assert holder(server) is None and changes == [True, False]
    assert b.step() is True  # no wait for the duration
    writes = server.writes
    a.release()  # not the holder any more: writes nothing
    assert server.writes == writes


def test_an_unreachable_api_keeps_the_leader_only_within_the_grace(server: LeaseServer, clock: Clock) -> None:
    a = elector(server, clock, "a")
    a.step()
    server.down = True
    clock.now += 5
    assert a.step() is True  # 5 s since the last renewal < 0.8 * 15
    clock.now += 8
    assert a.step() is False  # 13 s: another replica may take over soon; stop acting
    server.down = False
    assert a.step() is True  # still the holder in the Lease: renews and leads again
