"""Faults injected into the processes a test starts with this folder on PYTHONPATH (never the product).

``FAULT_SLOW_SEEK_S``: Faust's seek of the stream partitions to their committed offsets, which a
worker does when its table recovery completes, first waits this many seconds. It widens to seconds
a window that is otherwise a broker round trip (streams/recovery_seek.py).
"""

import os

if os.environ.get("FAULT_SLOW_SEEK_S"):
    import asyncio

    from faust.transport import consumer as _consumer

    _perform_seek = _consumer.Consumer.perform_seek

    async def _slow_perform_seek(self):  # type: ignore[no-untyped-def]
        await asyncio.sleep(float(os.environ["FAULT_SLOW_SEEK_S"]))
        await _perform_seek(self)

    _consumer.Consumer.perform_seek = _slow_perform_seek  # type: ignore[method-assign]
