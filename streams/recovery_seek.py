"""Stream partitions seeked to their committed offsets before they are resumed, when recovery completes.

faust-streaming 0.15.3's ``Recovery.on_recovery_completed`` resumes the stream partitions and only
then seeks them to their committed offsets. Its fetcher is already running (it read the changelog,
or the worker is rebalancing), so records fetched between the two steps reach the agents, and the
seek then sets Faust's read offsets back: those records are delivered a second time. A worker
restarted with a backlog published some scenes twice that way (the restart test caught it, once
per few CI runs). This is the same method with the two steps swapped, the order faust-streaming
PR #217 gave the path without tables: seek while paused, then resume. Before it seeks it waits for
the fetches in flight (streams/fetch_partitions.py): records such a fetch takes after the seek would
be past the position the seek set. ``install`` checks that Faust's method is still the one this was
written against (tests/streams/test_library_quirks.py pins the versions).
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.tables.recovery import Recovery

from streams import fetch_partitions
from streams.library_source import require_measured

_original = Recovery.on_recovery_completed
# sha256 of inspect.getsource(Recovery.on_recovery_completed) in faust-streaming 0.15.3.
MEASURED_SOURCE = "6ef567acf072e46da3fccbccc6d662371f634f622c3d510972d5df81f70ae3ac"


async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    """Faust's method, except that the stream partitions are positioned before they are resumed."""
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
        )
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(f"Recovery rebalancing again app id {self.app.consumer_generation_id} param {generation_id}")
        return
    if assignment:
        if not await fetch_partitions.IN_FLIGHT.settled(self.app.conf.broker_request_timeout):
            self.log.warning("a fetch begun before the seek has not returned; seeking all the same")
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    self.completed.set()
    self.app.flow_control.resume()
    consumer.resume_flow()
    await self.app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


def install() -> None:
    """Use the reordered method for every worker (idempotent; call before the worker starts).

    Raises RuntimeError when Faust's ``Recovery.on_recovery_completed`` is not the measured one."""
    require_measured(_original, MEASURED_SOURCE, "streams/recovery_seek.py", "does it still resume before it seeks?")
    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
