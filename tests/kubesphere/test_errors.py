"""The one rule for API failures: the same status means the same thing in every package."""

from __future__ import annotations

import pytest

from controllers.errors import Conflict, GiveUp, NotFound, RetryLater
from controllers.kube import sorted_error as controllers_error
from installer.errors import PermanentError, TemporaryError
from installer.kube import sorted_error as installer_error
from kubesphere.errors import KubeError, KubeUnavailable, retryable

RETRY = [None, 408, 409, 429, 500, 502, 503, 504]
GIVE_UP = [400, 401, 403, 404, 410, 422]


@pytest.mark.parametrize("status", RETRY)
def test_no_answer_timeouts_conflicts_throttling_and_5xx_are_retried(status: int | None) -> None:
    assert retryable(status)


@pytest.mark.parametrize("status", GIVE_UP)
def test_client_errors_are_final(status: int) -> None:
    assert not retryable(status)


def test_a_caller_may_say_otherwise_for_one_call() -> None:
    assert retryable(404, retry={404})
    assert not retryable(409, final={409})


@pytest.mark.parametrize("status", RETRY[1:] + GIVE_UP)
def test_installer_and_controllers_sort_by_the_same_rule(status: int) -> None:
    exc = KubeError(status, {"message": "x"})
    installer = installer_error(exc)
    controllers = controllers_error(exc)
    assert isinstance(installer, TemporaryError) == retryable(status)
    assert isinstance(installer, PermanentError) == (not retryable(status))
    if status == 404:
        assert isinstance(controllers, NotFound)
    elif status == 409:
        assert isinstance(controllers, Conflict)
    elif retryable(status):
        assert isinstance(controllers, RetryLater)
    else:
        assert isinstance(controllers, GiveUp)


def test_a_name_taken_is_not_a_conflict_to_retry() -> None:
    exists = KubeError(409, {"reason": "AlreadyExists", "message": 'configmaps "x" already exists'})
    modified = KubeError(409, {"reason": "Conflict", "message": "the object has been modified"})
    assert not exists.temporary and modified.temporary
    assert isinstance(installer_error(exists), PermanentError)


def test_no_answer_is_temporary_everywhere() -> None:
    exc = KubeUnavailable("connection refused")
    assert exc.temporary and exc.status == 503
    assert isinstance(installer_error(exc), TemporaryError)
    assert isinstance(controllers_error(exc), RetryLater)


def test_error_bodies_keep_the_status_and_fall_back_to_text() -> None:
    status = KubeError.from_response(
        422,
        b'{"kind":"Status","message":"spec.x: Invalid value","reason":"Invalid","code":422}',
        what="PATCH /x",
    )
    assert (status.status, status.reason, status.message) == (422, "Invalid", "spec.x: Invalid value")
    assert str(status) == "PATCH /x: spec.x: Invalid value"
    assert not status.temporary
    text = KubeError.from_response(502, b"<html>bad gateway</html>")
    assert text.message == "<html>bad gateway</html>" and text.temporary
