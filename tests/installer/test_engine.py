"""The real engine, driven with a fake API, a fake runner and a clock the test moves.

Each test feeds the engine spec changes, finishes runs when it chooses and
checks what a user would notice: the status written, the Events posted and the
runs started.  The probe component table of the process tests is used
(alpha; beta needs alpha; delta stands alone).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from installer import __version__, status
from installer.components import load_table
from installer.engine import Engine
from installer.errors import PermanentError, TemporaryError
from installer.metrics import Health, Metrics
from installer.planner import component_digests
from installer.settings import Settings
from tests.installer.conftest import TEST_ROLES, TEST_TABLE
from tests.installer.fakes import FakeApi, FakeClock, FakeRun, FakeRunner

EngineFactory = Callable[..., Engine]


def probe(**components: dict[str, Any]) -> dict[str, Any]:
    return {"probe": {name: {"namespace": "probe-test", **opts} for name, opts in components.items()}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engines(clock: FakeClock) -> Iterator[EngineFactory]:
    """``engines(api, runner, **settings)`` → an Engine on the probe table, stopped at the end."""
    made: list[tuple[Engine, FakeRunner]] = []

    def make(api: FakeApi, runner: FakeRunner, **overrides: Any) -> Engine:
        settings = Settings(
            namespace=api.namespace,
            name=api.name,
            component_table=TEST_TABLE,
            extra_roles_paths=[TEST_ROLES],
            backoff_base=10,
            backoff_cap=40,
            progress_interval=0,
            listen="",
            **overrides,
        )
        engine = Engine(
            settings=settings,
            kube=api,
            table=load_table(TEST_TABLE),
            runner=runner,
            metrics=Metrics("test"),
            health=Health(),
            clock=clock,
        )
        made.append((engine, runner))
        return engine

    yield make
    for engine, runner in made:
        runner.release()
        engine.runs.stop_all("the test ended")


def settle(engine: Engine, until: Callable[[], object], what: str) -> None:
    """Run passes of the loop (each waits at most 10 ms for a wake-up) until ``until()`` holds."""
    deadline = time.monotonic() + 10
    while True:
        engine.step()
        if until():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the engine never got to: {what}")
        engine.wait(0.01)


def next_run(engine: Engine, runner: FakeRunner, count: int) -> FakeRun:
    """Run passes of the loop until the engine has started its ``count``-th component run."""
    settle(engine, lambda: len(runner.runs) >= count, f"run {count} to start")
    return runner.runs[count - 1]


def start(engine: Engine, api: FakeApi) -> None:
    engine.on_cc("SYNC", api.get())
    engine.step()


def change(engine: Engine, api: FakeApi, edit: Callable[[dict[str, Any]], None]) -> None:
    """A spec patch arriving through the watch, then one pass of the loop."""
    engine.on_cc("MODIFIED", api.change_spec(edit))
    engine.step()


def test_ten_patches_during_a_run_coalesce_to_the_last_spec(engines: EngineFactory) -> None:
    api = FakeApi(probe(alpha={"enabled": True, "value": "v0"}))
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    first = runner.started(1)
    assert api.component("alpha")["state"] == "Installing"

    for i in range(1, 11):
        change(engine, api, lambda spec, i=i: spec["probe"]["alpha"].update(value=f"v{i}"))
    assert api.status["observedGeneration"] == 11
    assert api.component("alpha")["state"] == "Installing"
    assert len(runner.runs) == 1  # nothing more starts while alpha runs

    first.succeed()
    second = next_run(engine, runner, 2)
    assert second.spec["probe"]["alpha"]["value"] == "v10"
    second.succeed()
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")

    assert [r.spec["probe"]["alpha"]["value"] for r in runner.runs] == ["v0", "v10"]
    alpha = api.component("alpha")
    assert alpha["state"] == "Enabled"
    assert (
        alpha["appliedDigest"]
        == component_digests(load_table(TEST_TABLE), api.get()["spec"], version=__version__)["alpha"]
    )
    assert api.condition("Ready")["observedGeneration"] == 11
    assert api.reasons().count("ComponentInstalling") == 2
    assert api.reasons().count("Ready") == 1


def test_a_failed_component_backs_off_longer_each_time_then_recovers(
    engines: EngineFactory, clock: FakeClock
) -> None:
    api = FakeApi(probe(alpha={"enabled": True}, beta={"enabled": True}))
    runner = FakeRunner()
    engine = engines(api, runner)  # backoff 10s doubling, capped at 40s, jitter in [d/2, d]
    start(engine, api)

    for attempt, delay in enumerate((10, 20, 40, 40), start=1):
        runner.started(attempt).fail(message="probe alpha was told to fail")
        settle(engine, lambda a=attempt: api.component("alpha").get("attempts") == a, f"attempt {attempt}")
        alpha = api.component("alpha")
        assert alpha["state"] == "Failed"
        assert alpha["failedTask"] == "probe : Probe | Refuse on purpose"
        assert "probe alpha was told to fail" in alpha["message"]
        assert api.status["alpha"]["status"] == "failed"
        assert api.condition("Degraded")["reason"] == "ComponentFailed"
        assert api.condition("Ready")["status"] == "False"
        assert api.component("beta")["state"] == "Pending"  # what needs alpha waits
        assert api.component("beta")["message"] == "waiting for alpha"

        clock.advance(delay / 2 - 0.01)  # before the earliest the jitter allows: no retry
        engine.step()
        assert len(runner.runs) == attempt
        assert api.component("alpha")["state"] == "Failed"
        clock.advance(delay / 2 + 0.02)  # past the latest: retried
        engine.step()
        assert api.component("alpha")["state"] == "Installing"

    assert api.reasons().count("ComponentFailed") == 4
    runner.started(5).succeed()
    settle(engine, lambda: api.component("alpha").get("state") == "Enabled", "alpha enabled")
    alpha = api.component("alpha")
    assert "attempts" not in alpha and "failedTask" not in alpha
    assert api.status["alpha"]["status"] == "enabled"
    assert api.condition("Degraded")["status"] == "False"

    beta = next_run(engine, runner, 6)
    assert beta.component == "beta"
    beta.succeed()
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert runner.summary() == [("alpha", "install")] * 5 + [("beta", "install")]


def test_switching_a_component_off_cancels_its_install_and_uninstalls_it(engines: EngineFactory) -> None:
    api = FakeApi(probe(delta={"enabled": True}))
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    install = runner.started(1)
    assert api.component("delta")["state"] == "Installing"

    change(engine, api, lambda spec: spec["probe"]["delta"].update(enabled=False))
    assert install.cancel.is_set()
    uninstall = next_run(engine, runner, 2)  # a cut-short install may have left objects
    assert install.result is not None and install.result.status == "canceled"
    assert uninstall.action == "uninstall"
    assert api.component("delta")["state"] == "Disabling"
    uninstall.succeed()
    settle(engine, lambda: api.component("delta").get("state") == "Disabled", "delta disabled")

    assert runner.summary() == [("delta", "install"), ("delta", "uninstall")]
    assert "delta" not in api.status  # ks-installer's key goes with the component
    assert [r for r in api.reasons() if r.startswith("Component")] == [
        "ComponentInstalling",
        "ComponentDisabling",
        "ComponentDisabled",
    ]


def test_what_an_uninstall_could_not_remove_is_listed_in_status_until_a_run_removes_it(
    engines: EngineFactory,
) -> None:
    api = FakeApi(probe(delta={"enabled": True}))
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    runner.started(1).succeed()
    settle(engine, lambda: api.component("delta").get("state") == "Enabled", "delta enabled")

    change(engine, api, lambda spec: spec["probe"]["delta"].update(enabled=False))
    held = {"kind": "Service", "namespace": "ns", "name": "svc", "reason": "deletion waits for finalizers x"}
    next_run(engine, runner, 2).succeed(leftovers=[held])
    settle(engine, lambda: api.component("delta").get("state") == "Disabled", "delta disabled")
    assert api.component("delta")["leftovers"] == [held]
    assert "1 object(s) not removed" in api.component("delta")["message"]
    assert "ObjectsLeftBehind" in api.reasons()

    # The next run that removes everything clears the list.
    change(engine, api, lambda spec: spec["probe"]["delta"].update(enabled=True))
    next_run(engine, runner, 3).succeed()
    settle(engine, lambda: api.component("delta").get("state") == "Enabled", "delta enabled again")
    assert "leftovers" not in api.component("delta")


def test_the_drift_check_re_runs_enabled_components_and_reports_repairs(
    engines: EngineFactory, clock: FakeClock
) -> None:
    api = FakeApi(probe(alpha={"enabled": True}))
    runner = FakeRunner(auto=True)
    engine = engines(api, runner, drift_interval=60)
    start(engine, api)
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    written = len(api.patches)

    clock.advance(59)
    engine.step()
    assert len(runner.runs) == 1  # not due yet
    clock.advance(2)
    settle(engine, lambda: len(runner.runs) == 2 and runner.runs[1].result, "the drift run to end")
    settle(engine, lambda: "DriftRepaired" in api.reasons(), "a DriftRepaired event")
    assert runner.runs[1].action == "install"
    assert api.reasons().count("ComponentInstalling") == 1  # a drift run is no install to the user
    assert all(
        p.get("components", {}).get("alpha", {}).get("state") in (None, "Enabled")
        for p in api.patches[written:]
    )
    assert api.condition("Ready")["status"] == "True"

    runner.changed = 0  # nothing drifted this time: no event
    clock.advance(61)
    settle(engine, lambda: len(runner.runs) == 3 and runner.runs[2].result, "the second drift run to end")
    engine.step()
    assert api.reasons().count("DriftRepaired") == 1


def test_a_restart_resumes_from_the_recorded_status_without_rerunning_anything(
    engines: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(probe(alpha={"enabled": True}, beta={"enabled": True}))
    first = FakeRunner(auto=True)
    engine = engines(api, first)
    start(engine, api)
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert first.summary() == [("alpha", "install"), ("beta", "install")]
    written, events, before_alpha = len(api.patches), list(api.events), api.component("alpha")

    caplog.set_level(logging.INFO, logger="ks-installer")
    runner = FakeRunner(auto=True)
    again = engines(api, runner)  # a new process, or a new leader, fed the same object
    start(again, api)
    again.step()
    assert runner.runs == [] and runner.preflights == []
    assert len(api.patches) == written  # the status it found is the status it would write
    assert api.events == events  # no second Ready event
    assert "resuming from status: alpha=Enabled, beta=Enabled" in caplog.text
    assert "[plan] nothing to do: 2 components up to date (generation 1)" in caplog.text
    assert "Welcome to KubeSphere!" in caplog.text

    change(again, api, lambda spec: spec["probe"].update(delta={"enabled": True, "namespace": "probe-test"}))

    def ready_at_2() -> bool:
        ready = api.condition("Ready")
        return ready.get("status") == "True" and ready.get("observedGeneration") == 2

    settle(again, ready_at_2, "Ready at generation 2")
    assert runner.summary() == [("delta", "install")]
    assert api.component("alpha") == before_alpha


def test_losing_the_lease_cancels_runs_in_flight_and_a_new_leader_resumes(engines: EngineFactory) -> None:
    api = FakeApi(probe(alpha={"enabled": True}, beta={"enabled": True}))
    runner = FakeRunner()
    engine = engines(api, runner)
    term = threading.Event()  # set by the operator when the lease is lost
    loop = threading.Thread(target=engine.run, args=(term,), name="engine-under-test")
    loop.start()
    try:
        runner.started(1).succeed()
        beta = runner.started(2)
        assert beta.component == "beta"
    finally:
        term.set()
        loop.join(timeout=10)
    assert not loop.is_alive()

    assert beta.cancel.is_set()
    assert beta.result is not None and beta.result.status == "canceled"
    assert api.component("alpha")["state"] == "Enabled"
    assert api.component("beta")["state"] == "Installing"  # it may have left objects
    assert api.component("beta")["message"] == "canceled: the operator stopped"
    assert api.condition("Ready")["status"] == "False"

    runner = FakeRunner(auto=True)
    successor = engines(api, runner)
    start(successor, api)
    settle(successor, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert runner.summary() == [("beta", "install")]


def test_preflight_refusing_the_spec_changes_nothing_until_it_passes(
    engines: EngineFactory, clock: FakeClock
) -> None:
    api = FakeApi(probe(alpha={"enabled": True}))
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    alpha = next_run(engine, runner, 1)
    alpha.fail()
    settle(engine, lambda: api.component("alpha").get("state") == "Failed", "alpha failed")
    clock.advance(10.01)  # alpha's retry is due, but first the spec changes and preflight refuses it

    runner.preflight_failure = "probe_preflight_reject is set: refusing before any change"
    change(engine, api, lambda spec: spec["probe"]["alpha"].update(value="v1"))
    assert len(runner.runs) == 1  # nothing runs on a spec preflight refused
    degraded = api.condition("Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "PreflightFailed"
    assert "refusing before any change" in degraded["message"]
    assert api.reasons().count("PreflightFailed") == 1
    # The loop sleeps until preflight's own retry (backoff 10s: in [5, 10]) rather than
    # waking at once, again and again, for alpha's retry that it cannot act on.
    assert 5 - 0.01 <= engine.seconds_until_due() <= 10
    engine.step()
    assert len(runner.preflights) == 2  # the first spec, then the refused one; not again yet

    clock.advance(10.01)
    engine.step()
    assert len(runner.preflights) == 3 and api.reasons().count("PreflightFailed") == 2

    runner.preflight_failure = None
    runner.auto = True
    change(engine, api, lambda spec: spec["probe"]["alpha"].update(value="v2"))
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert [r.spec["probe"]["alpha"].get("value") for r in runner.runs] == [None, "v2"]
    assert api.condition("Degraded")["status"] == "False"


def test_a_status_patch_refused_for_good_is_reported_once_and_not_resent(
    engines: EngineFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wall time moves a second whenever a timestamp is taken, as on a slow machine.
    seconds = itertools.count()

    def ticking() -> str:
        n = next(seconds)
        return f"2026-01-01T{n // 3600:02}:{n // 60 % 60:02}:{n % 60:02}Z"

    monkeypatch.setattr(status, "now_rfc3339", ticking)
    caplog.set_level(logging.INFO, logger="ks-installer")
    api = FakeApi(probe(alpha={"enabled": True}, beta={"enabled": True}))
    api.refuse = PermanentError("patching status: (422) Unprocessable Entity: status.summary: Invalid value")
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    alpha = runner.started(1)  # reconciling goes on
    assert len(api.refused) == 1
    assert api.reasons().count("StatusRejected") == 1
    for _ in range(3):  # nothing changed: the refused patch is not sent again
        engine.wait(0.001)
        engine.step()
    assert len(api.refused) == 1

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "refused the status update" in errors[0] and "(422)" in errors[0]
    assert "lastTransitionTime" not in errors[0] and "appliedDigest" not in errors[0]  # no document dumped

    alpha.succeed()
    beta = next_run(engine, runner, 2)  # beta runs though no status could be written
    assert beta.component == "beta"
    assert len(api.refused) == 2  # a different document is tried again
    assert api.reasons().count("StatusRejected") == 1  # one Warning, not one per attempt

    api.refuse = None  # the cause went away (a fixed schema, say): the next change is written
    beta.succeed()
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert api.component("alpha")["state"] == "Enabled" and api.component("beta")["state"] == "Enabled"
    assert api.status["summary"] == "2/2 enabled"


def test_a_status_patch_that_fails_for_now_is_sent_again(engines: EngineFactory) -> None:
    api = FakeApi(probe(alpha={"enabled": True}))
    api.refuse = TemporaryError("patching status: (503) Service Unavailable")
    runner = FakeRunner(auto=True)
    engine = engines(api, runner)
    engine.on_cc("SYNC", api.get())
    for attempt in (1, 2):  # the loop logs it and tries again two seconds later
        with pytest.raises(TemporaryError):
            engine.step()
        assert len(api.refused) == attempt
    assert "StatusRejected" not in api.reasons()

    api.refuse = None
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert runner.summary() == [("alpha", "install")]


def test_the_task_total_is_known_from_the_first_progress_line(engines: EngineFactory) -> None:
    """The first run's total counts the playbook's tasks and the role's; later runs (and a
    restarted operator) use the count the last successful run of that role started."""
    api = FakeApi(probe(alpha={"enabled": True, "value": "v0"}))
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    first = runner.started(1)
    estimate = first.request.expected_tasks
    assert estimate is not None and estimate > 5  # the probe role's 5 tasks and the playbook's own
    first.progress(1, "KubeSphere | One component or everything")
    engine.step()
    assert api.component("alpha")["tasks"]["total"] == estimate
    first.succeed(tasks=estimate - 1)  # a conditional include that did not run
    settle(engine, lambda: api.component("alpha")["state"] == "Enabled", "alpha Enabled")
    assert api.component("alpha")["tasks"]["total"] == estimate - 1

    change(engine, api, lambda spec: spec["probe"]["alpha"].update(value="v1"))
    assert runner.started(2).request.expected_tasks == estimate - 1
    runner.started(2).succeed(tasks=estimate - 1)
    settle(engine, lambda: api.component("alpha")["state"] == "Enabled", "alpha Enabled again")

    restarted = FakeRunner()
    again = engines(api, restarted)
    start(again, api)
    change(again, api, lambda spec: spec["probe"]["alpha"].update(value="v2"))
    assert restarted.started(1).request.expected_tasks == estimate - 1


def annotate(engine: Engine, api: FakeApi, annotations: dict[str, str | None]) -> None:
    """``kubectl annotate`` arriving through the watch: no new generation, then one pass."""
    with api._lock:
        meta = api.cc["metadata"]
        current = meta.setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        obj = api._bump()
    engine.on_cc("MODIFIED", obj)
    engine.step()


def test_a_pause_holds_new_runs_until_it_goes_and_then_the_latest_spec_runs(engines: EngineFactory) -> None:
    api = FakeApi(probe(alpha={"enabled": True, "value": "v0"}, delta={"enabled": True}))
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    assert {runner.started(1).component, runner.started(2).component} == {"alpha", "delta"}
    for run in runner.runs:
        run.succeed()
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert api.condition("Paused")["status"] == "False"

    # Paused for delta only: a change to alpha runs, one to delta is held.
    annotate(engine, api, {"installer.kubesphere.io/paused-components": "delta"})
    change(engine, api, lambda spec: spec["probe"]["alpha"].update(value="v1"))
    change(engine, api, lambda spec: spec["probe"]["delta"].update(value="d1"))
    assert next_run(engine, runner, 3).component == "alpha"
    runner.started(3).succeed()
    settle(engine, lambda: api.component("alpha").get("state") == "Enabled", "alpha enabled")
    engine.step()
    assert len(runner.runs) == 3
    paused = api.condition("Paused")
    assert paused["status"] == "True" and "held: delta" in paused["message"]
    assert api.condition("Ready")["reason"] == "Paused"

    # Everything paused: the next change to alpha is held as well, run nothing.
    annotate(engine, api, {"installer.kubesphere.io/paused": "true"})
    change(engine, api, lambda spec: spec["probe"]["alpha"].update(value="v2"))
    for _ in range(3):
        engine.step()
    assert len(runner.runs) == 3
    assert "held: alpha, delta" in api.condition("Paused")["message"]

    # Removing both annotations resumes from the spec as it is now.
    annotate(
        engine,
        api,
        {"installer.kubesphere.io/paused": None, "installer.kubesphere.io/paused-components": None},
    )
    settle(engine, lambda: len(runner.runs) == 5, "the held runs start")
    held = {r.component: r for r in runner.runs[3:]}
    assert held["alpha"].spec["probe"]["alpha"]["value"] == "v2"
    assert held["delta"].spec["probe"]["delta"]["value"] == "d1"
    for run in runner.runs[3:]:
        run.succeed()
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    assert api.condition("Paused")["status"] == "False"


@pytest.mark.parametrize(
    ("annotations", "everything", "components"),
    [
        ({}, False, set()),
        ({"installer.kubesphere.io/paused": "True"}, True, set()),
        ({"installer.kubesphere.io/paused": "false"}, False, set()),
        ({"installer.kubesphere.io/paused": "yes"}, False, set()),  # only "true" pauses
        ({"installer.kubesphere.io/paused-components": " devops, monitoring  redis,"}, False,
         {"devops", "monitoring", "redis"}),
    ],
)  # fmt: skip
def test_pause_annotations(annotations: dict[str, str], everything: bool, components: set[str]) -> None:
    from installer.pause import pause_of

    pause = pause_of({"metadata": {"annotations": annotations}})
    assert (pause.everything, set(pause.components), bool(pause)) == (
        everything,
        components,
        everything or bool(components),
    )


def test_each_generation_with_work_logs_its_plan_once_with_reasons(
    engines: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ks-installer")
    api = FakeApi(probe(alpha={"enabled": True, "value": "v0"}))
    runner = FakeRunner()
    engine = engines(api, runner)
    start(engine, api)
    runner.started(1).succeed()
    settle(engine, lambda: api.component("alpha")["state"] == "Enabled", "alpha Enabled")
    assert api.component("alpha")["appliedInputs"]["spec.probe.alpha"]

    change(engine, api, lambda spec: spec["probe"]["alpha"].update(value="v1"))
    change(engine, api, lambda spec: spec["probe"].update(beta={"enabled": True, "namespace": "probe-test"}))
    runner.started(2).succeed()
    next_run(engine, runner, 3).succeed()
    settle(engine, lambda: api.condition("Ready").get("status") == "True", "Ready")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[plan] generation")]
    assert lines == [
        "[plan] generation 1: install alpha (not installed; enabled in spec)",
        "[plan] generation 2: install alpha (spec.probe.alpha changed; enabled in spec)",
        "[plan] generation 3: install alpha (an install is running or did not finish; enabled in spec; "
        "needed by beta), install beta (not installed; enabled in spec)",
    ]
    assert "v1" not in "\n".join(lines)  # reasons name inputs, never their values
