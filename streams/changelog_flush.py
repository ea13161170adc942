"""A producer buffer that is empty when Faust commits offsets, so table updates are never lost to a crash.

faust-streaming 0.15.3 flushes the producer before it commits the consumer's offsets. Table changelog
records (``Table.__setitem__`` cannot await) wait in the producer's ``ProducerBuffer`` until a
background task hands them to aiokafka, and ``ProducerBuffer.flush`` returns as soon as 0.1 s pass
without a message handed over, with records still in the buffer: on a busy worker it often does.
The offsets of the events that made those records are then committed; a worker killed before the
records leave loses them, and the worker that takes its partitions over recovers the table without
them. Measured: after a SIGKILL, six segment windows two fixes short of a single worker's
(``tests/test_scale_out.py``, about one run in three). This flush waits until the buffer is empty
and the record being handed over has gone too (bounded by the broker request timeout). ``install``
checks that Faust's method is still the one this was written against.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.transport.producer import ProducerBuffer

from streams.library_source import require_measured

log = logging.getLogger(__name__)
_original = ProducerBuffer.flush_atmost
_replaced = ProducerBuffer.flush
# sha256 of inspect.getsource(...) in faust-streaming 0.15.3: flush_atmost, and the flush it backs.
MEASURED_SOURCE = "4966e8c5f9b42eb97abe3f93cbc9bc566a22bdea01ae5328c5a6593414820323"
MEASURED_FLUSH_SOURCE = "26fbebb124ad9c9890f19b4615585cf3eda102b61203e6aa885d3fabfda9b157"
HANDOVER_WAIT_S = 0.1  # Faust's own wait for one message to be handed over


async def flush(self: Any) -> None:
    """Wait until every buffered message has been handed to the driver."""
    timeout = self.app.conf.broker_request_timeout if self.app is not None else 30.0
    deadline = time.monotonic() + timeout
    while self.size:
        await _original(self, None)  # returns after 0.1 s without progress: go on while records remain
        if time.monotonic() > deadline:
            log.warning("producer buffer holds %d records after %.0f s; committing all the same", self.size, timeout)
            return
    # The sender may be handing the last record over (taken from the buffer, not yet sent): wait for it.
    self.message_sent.clear()
    try:
        await asyncio.wait_for(self.message_sent.wait(), timeout=HANDOVER_WAIT_S)
    except asyncio.TimeoutError:
        pass


def install() -> None:
    """Use the draining flush for every producer buffer (idempotent; call before the worker starts).

    Raises RuntimeError when Faust's ``ProducerBuffer.flush_atmost`` is not the measured one."""
    question = "does flush still stop after 0.1 s without progress?"
    require_measured(_original, MEASURED_SOURCE, "streams/changelog_flush.py", question)
    if ProducerBuffer.flush is not flush:
        require_measured(_replaced, MEASURED_FLUSH_SOURCE, "streams/changelog_flush.py", question)
    ProducerBuffer.flush = flush  # type: ignore[method-assign]
