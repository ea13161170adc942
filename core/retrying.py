"""Bounded retries of a call that fails while a service boots or is out of reach, on tenacity.

The unbounded waits of the worker for its outages are ``streams.health.wait_out``; this is their
bounded counterpart for connecting and readiness: try again every ``pause_s``, give up after
``timeout_s`` with an error that says what to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a readiness check that answered, but not yet what it waits for."""


def retry_until(
    call: Callable[[], T],
    timeout_s: float,
    pause_s: float,
    failure: Callable[[BaseException], Exception],
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> T:
    """``call()``, tried again after ``pause_s`` while it raises ``retry_on``; once ``timeout_s`` has passed
    the last such error becomes ``failure(error)``, raised from it. Other errors are raised as they are."""
    try:
        for attempt in Retrying(
            retry=retry_if_exception_type(retry_on),
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(pause_s),
            reraise=True,
        ):
            with attempt:
                return call()
    except retry_on as exc:
        raise failure(exc) from exc
    raise AssertionError("unreachable: tenacity retries until the call returns, raises or times out")
