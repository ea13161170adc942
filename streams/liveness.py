"""A worker whose consumer stops delivering a partition restarts itself instead of idling for ever.

Faust's consumer can stop handing a partition's records to its agent while the group is stable and
heartbeats flow (faust-streaming issues #175 and #523; seen here after a worker was killed with
``kill -9`` and restarted: records waiting, the agent idle, the committed offset frozen). Nothing
in the process notices, so ``StallWatch`` does: records wait on a partition that no agent has taken
anything from for ``worker.stall_timeout_s`` while Triton and PostgreSQL are up. The worker then
stops (``fleetscope_partition_stalls_total`` counts it) and its supervisor or orchestrator starts it
again; it resumes from the committed offsets, and the sinks upsert what it processes twice.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Hashable

from streams import metrics

log = logging.getLogger(__name__)
EXIT_STALLED = 3  # exit code when a graceful stop after a stall does not finish in time


class StallWatch:
    """Remembers, per partition, since when its next offset to process has not moved while records wait."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._since: dict[Hashable, tuple[int, float]] = {}

    def stalled(self, tp: Hashable, position: int, highwater: int, now: float) -> bool:
        """Whether ``tp`` has had records waiting at an unchanged ``position`` for ``timeout_s``."""
        if self.timeout_s <= 0 or highwater <= position:
            self._since.pop(tp, None)
            return False
        seen = self._since.get(tp)
        if seen is None or seen[0] != position:
            self._since[tp] = (position, now)
            return False
        return now - seen[1] >= self.timeout_s

    def reset(self) -> None:
        """Forget every partition (a rebalance, a recovery or an outage: waiting is expected then)."""
        self._since.clear()


def restart_stalled_worker(stalled: list[str], grace_s: float) -> None:
    """Stop this worker gracefully (offsets of processed messages are committed), hard after ``grace_s``."""
    metrics.PARTITION_STALLS.inc()
    log.error(
        "no agent has taken records waiting on %s for longer than the stall timeout: Faust's consumer stopped"
        " delivering them; stopping the worker so that it is started again",
        ", ".join(stalled),
    )
    hard_stop = threading.Timer(grace_s, os._exit, [EXIT_STALLED])
    hard_stop.daemon = True  # a graceful stop that finishes in time exits as usual
    hard_stop.start()
    os.kill(os.getpid(), signal.SIGTERM)
