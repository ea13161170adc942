"""Each fetch asks aiokafka for the partitions that were active when it began, not Faust's live set.

faust-streaming 0.15.3 hands aiokafka's ``Fetcher.fetched_records`` the very set it keeps of the
active partitions, which it goes on changing while the fetch waits, and aiokafka 0.14.0 reads an
empty set as "every partition". A worker that finished recovering its table paused the changelog
partitions while the stream partitions were still paused: the fetch in flight then saw an empty set,
took the waiting records of every stream partition (moving their positions past them), and Faust,
finding those partitions inactive, dropped the records without a word. The frames a killed worker had
not processed were never processed, with a consumer lag of 0 (tests/test_chaos.py failed 3 runs of 3
under a CPU hog, and once in CI). Here each fetch gets a frozen copy, and the fetches in flight are
kept so that the seek after recovery can wait for them (streams/recovery_seek.py). ``install`` checks
that Faust's method is still the one this wraps (tests/streams/test_library_quirks.py pins the versions).
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.library_source import require_measured

_getmany = faust_aiokafka.AIOKafkaConsumerThread.getmany
# sha256 of inspect.getsource(AIOKafkaConsumerThread.getmany) in faust-streaming 0.15.3.
MEASURED_SOURCE = "26fc5fc9f3b667e104f9657dbc49da3b3b6620d40cc9856761cbaf4da2172557"


class FetchesInFlight:
    """The worker's fetches that have not returned yet."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Future[None]] = set()

    def begin(self) -> asyncio.Future[None]:
        """Note a fetch starting; resolve the returned future when it ends."""
        done = asyncio.get_running_loop().create_future()
        self._pending.add(done)
        done.add_done_callback(self._pending.discard)
        return done

    async def settled(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until every fetch begun before this call has returned."""
        begun = list(self._pending)
        if not begun:
            return True
        _, pending = await asyncio.wait(begun, timeout=timeout_s)
        return not pending


IN_FLIGHT = FetchesInFlight()


async def getmany(self: Any, active_partitions: Any, timeout: float) -> Any:
    """Faust's fetch, given the partitions active now rather than the set Faust goes on changing."""
    if active_partitions is not None:
        active_partitions = frozenset(active_partitions)
        if not active_partitions:  # aiokafka would read it as every partition
            return {}
    done = IN_FLIGHT.begin()
    try:
        return await _getmany(self, active_partitions, timeout)
    finally:
        done.set_result(None)


def install() -> None:
    """Use the copying fetch for every worker (idempotent; call before the worker starts).

    Raises RuntimeError when Faust's ``AIOKafkaConsumerThread.getmany`` is not the measured one."""
    require_measured(
        _getmany,
        MEASURED_SOURCE,
        "streams/fetch_partitions.py",
        "does it still pass its live set of active partitions?",
    )
    faust_aiokafka.AIOKafkaConsumerThread.getmany = getmany  # type: ignore[method-assign]
