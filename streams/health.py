"""The services the worker needs (Triton, PostgreSQL): waiting out their outages instead of dropping data.

While a service is unreachable, the agent that needs it retries the same request with capped
exponential backoff and no bound on the count (``wait_out``): it holds its partitions, nothing is
dead-lettered for the outage, and the worker reports itself not ready. An error that is not an
outage (a request the service rejects for its content) goes straight back to the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from streams import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF_S = 10.0  # longest pause between two tries while a service is down


class Dependency:
    """One service the worker needs: up or down, each outage logged once and metered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since: float | None = None
        self._counted = 0.0  # when the down time was last added to the counter
        metrics.DEPENDENCY_UP.labels(name).set(1)

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, error: BaseException | None, retry_in_s: float | None = None) -> None:
        """Record a failed try that an outage explains."""
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            self._counted = now
            metrics.DEPENDENCY_OUTAGES.labels(self.name).inc()
            metrics.DEPENDENCY_UP.labels(self.name).set(0)
            log.warning("%s unreachable (%s): waiting for it, messages held", self.name, _first_line(error))
        else:
            metrics.DEPENDENCY_DOWN_SECONDS.labels(self.name).inc(now - self._counted)
            self._counted = now
            log.info("%s still unreachable; next try in %.1f s", self.name, retry_in_s or 0.0)

    def ok(self) -> None:
        """Record a successful call."""
        if self.down_since is not None:
            now = time.monotonic()
            metrics.DEPENDENCY_DOWN_SECONDS.labels(self.name).inc(now - self._counted)
            metrics.DEPENDENCY_UP.labels(self.name).set(1)
            log.warning("%s reachable again after %.1f s", self.name, now - self.down_since)
            self.down_since = None


async def wait_out(
    dependency: Dependency,
    call: Callable[[], Awaitable[T]],
    is_outage: Callable[[BaseException], bool],
    max_backoff_s: float = MAX_BACKOFF_S,
) -> T:
    """``await call()``, tried again for as long as it fails with an outage; other errors are raised."""

    def note(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        dependency.failed(error, state.next_action.sleep if state.next_action else None)

    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_outage),
            wait=wait_exponential(multiplier=0.25, max=max_backoff_s),
            before_sleep=note,
            reraise=True,
        ):
            with attempt:
                result = await call()
            if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
                dependency.ok()
                return result
    except Exception as exc:
        if not is_outage(exc):
            dependency.ok()  # it answered, if only to refuse this call
        raise
    raise AssertionError("unreachable: tenacity retries until the call succeeds or raises")


def _first_line(error: BaseException | None) -> str:
    return str(error).splitlines()[0][:200] if error is not None and str(error) else type(error).__name__
