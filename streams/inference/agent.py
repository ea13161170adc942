"""Inference: join each frame with its segment's traffic window, call the three Triton models, emit ``Scene``s.

Enriched frames are keyed by segment, so this worker owns the windows of the segments its frames
are on (``streams.context.segment_windows``): the join is a local table read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from faust.types import EventT

from core.errors import InferenceError
from records.messages import EnrichedFrame, utcnow
from streams import metrics, topics
from streams.context.segment_windows import SegmentWindows
from streams.context.st_vector import with_window
from streams.deadletter import dead_letter, decode_batch, one_by_one
from streams.inference.outputs import to_scene
from streams.inference.triton_client import TritonModels
from streams.runtime import Runtime

log = logging.getLogger(__name__)


def joined(frame: EnrichedFrame, windows: SegmentWindows, horizon_s: float) -> EnrichedFrame:
    """The frame with its segment's window, as of ``horizon_s`` after capture, in the ST context
    (unchanged without a segment). The horizon is the GPS join's tolerance, as in training's replay."""
    if frame.segment is None:
        return frame
    window = windows.lookup(frame.segment.segment_id, frame.frame.captured_at, horizon_s)
    return frame.model_copy(
        update={
            "segment": frame.segment.model_copy(update={"window": window}),
            "st_context": with_window(frame.st_context, window),
        }
    )


def register(rt: Runtime, windows: SegmentWindows) -> TritonModels:
    """Define the inference agent; return the client so the app can close it at shutdown."""
    cfg = rt.settings.triton
    models = TritonModels(cfg, rt.triton)
    threshold = rt.settings.worker.object_threshold

    async def run_batch(frames: list[EnrichedFrame]) -> list[object]:
        """Scenes for a batch; if Triton rejects the batch, each frame is tried alone to isolate the bad one."""
        if not frames:
            return []
        ctx = np.array([f.st_context for f in frames], dtype=np.float32)
        try:
            st, sa, sg = await models.analyse([f.frame.jpeg for f in frames], ctx)
            return [to_scene(f, i, st, sa, sg, threshold) for i, f in enumerate(frames)]
        except InferenceError as exc:
            if len(frames) == 1:
                return [exc]
            log.warning("batch of %d failed (%s); retrying frame by frame", len(frames), exc)
        return [r for f in frames for r in await run_batch([f])]

    async def infer_batch(batch: Sequence[tuple[EventT, EnrichedFrame]]) -> None:
        frames = [joined(f, windows, rt.settings.worker.gps_tolerance_s) for _, f in batch]
        for (event, _), frame, result in zip(batch, frames, await run_batch(frames), strict=True):
            if isinstance(result, Exception):
                await dead_letter(rt, event, "inference", "inference_failed", str(result))
                continue
            await rt.send(topics.SCENES_INFERRED, frame.frame.vehicle_id, result.encode())  # type: ignore[attr-defined]
            if frame.produced_at is not None:
                metrics.END_TO_END.observe((utcnow() - frame.produced_at).total_seconds())

    @rt.agent(topics.FRAMES_ENRICHED, name="infer", concurrency=2)
    async def infer(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(cfg.batch_size, within=cfg.batch_linger_s):
            rt.received(topics.FRAMES_ENRICHED, *events)
            decoded, batch_events = await decode_batch(rt, events, EnrichedFrame, "inference")
            await one_by_one(rt, "inference", list(zip(batch_events, decoded, strict=True)), infer_batch)

    return models
