"""Calls the three fleetscope models on Triton through ``tritonclient.grpc.aio``.

Bounded concurrency (a semaphore over requests in flight) and a timeout per request. After a failed
request the client asks Triton whether the model is ready: if not (Triton killed, restarting,
unreachable) that is an outage, waited out without limit (``streams.health``); if it is ready, a
transient failure is retried ``max_retries`` times and any other is the request's own fault
(``InferenceError``), which the inference agent dead-letters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential
from tritonclient.utils import InferenceServerException

from core.errors import InferenceError, ServiceUnavailable
from core.settings import TritonSettings
from models.vocab import ASPECTS
from streams import metrics
from streams.health import Dependency, wait_out

log = logging.getLogger(__name__)

ST_CLIP_OUTPUTS = tuple(f"ASPECT_{a.upper()}" for a in ASPECTS)
SA_CLIP_OUTPUTS = ("ANOMALY_SCORE", "RELATION_SCORES")
SCENE_GRAPH_OUTPUTS = ("BOXES", "CLASS_IDS", "CLASS_SCORES", "FACING", "TRIPLETS", "TRIPLET_SCORES")
TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "UNKNOWN")
# Triton saying it cannot serve now (overloaded, shutting down) even while it reports the model ready.
OUTAGE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")

PROBE_TIMEOUT_S = 2.0
Outputs = dict[str, np.ndarray]


class TritonModels:
    """Async client for st_clip, sa_clip and scene_graph."""

    def __init__(self, cfg: TritonSettings, health: Dependency | None = None) -> None:
        self.cfg = cfg
        self.health = health or Dependency("triton")
        self._client: grpcaio.InferenceServerClient | None = None
        self._slots = asyncio.Semaphore(cfg.max_concurrency)

    @property
    def client(self) -> grpcaio.InferenceServerClient:
        # Created lazily so that it binds to the worker's running event loop.
        if self._client is None:
            self._client = grpcaio.InferenceServerClient(self.cfg.grpc_url)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> Outputs:
        """One batched request; waits out an outage, raises InferenceError when Triton cannot serve it."""
        batch = next(iter(inputs.values())).shape[0]
        metrics.TRITON_BATCH.labels(model).observe(batch)
        t0 = time.perf_counter()
        result = await wait_out(
            self.health, lambda: self._infer_ready(model, inputs, outputs), lambda e: isinstance(e, ServiceUnavailable)
        )
        metrics.TRITON_LATENCY.labels(model).observe(time.perf_counter() - t0)
        return result

    async def _infer_ready(self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> Outputs:
        """The request with retries while Triton has the model ready; ServiceUnavailable when it has not."""

        def note(state: RetryCallState) -> None:
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s request failed (attempt %d), retrying in %.2fs", model, state.attempt_number, delay)

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_Transient),
                stop=stop_after_attempt(self.cfg.max_retries + 1),
                wait=wait_exponential(multiplier=self.cfg.retry_backoff_s),
                before_sleep=note,
                reraise=True,
            ):
                with attempt:
                    return await self._infer_once(model, inputs, outputs)
        except _Transient as exc:  # still failing after max_retries
            if any(code in exc.status for code in OUTAGE):
                raise ServiceUnavailable(f"Triton at {self.cfg.grpc_url}: {exc.message} ({exc.status})") from None
            raise InferenceError(f"{model}: {exc.message} ({exc.status or 'no status'})") from None
        raise AssertionError("unreachable: tenacity retries until the call returns or raises")

    async def _infer_once(self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> Outputs:
        """One try of the request; a failure worth trying again raises ``_Transient``."""
        try:
            async with self._slots:
                result = await self.client.infer(
                    model,
                    [_tensor(name, arr) for name, arr in inputs.items()],
                    outputs=[grpcclient.InferRequestedOutput(o) for o in outputs],
                    client_timeout=self.cfg.request_timeout_s,
                )
            return {o: result.as_numpy(o) for o in outputs}
        except InferenceServerException as exc:
            status = str(exc.status() or "")
            if not await self.model_ready(model):
                metrics.TRITON_ERRORS.labels(model, "unavailable").inc()
                raise ServiceUnavailable(
                    f"Triton at {self.cfg.grpc_url} has no {model} ready: {exc.message()}"
                ) from None
            transient = any(code in status for code in TRANSIENT)
            metrics.TRITON_ERRORS.labels(model, "transient" if transient else "rejected").inc()
            if not transient:
                raise InferenceError(f"{model}: {exc.message()} ({status or 'no status'})") from None
            raise _Transient(exc.message(), status) from None

    async def model_ready(self, model: str) -> bool:
        """Whether Triton answers that ``model`` is ready (False when it does not answer at all)."""
        try:
            return bool(await self.client.is_model_ready(model, client_timeout=PROBE_TIMEOUT_S))
        except Exception:  # unreachable, timing out, shutting down: not ready, whatever the error says
            return False

    async def analyse(self, jpegs: Sequence[bytes], st_context: np.ndarray) -> tuple[Outputs, Outputs, Outputs]:
        """Run the three models on one batch of frames, concurrently."""
        images = np.array([[j] for j in jpegs], dtype=np.object_)
        return await asyncio.gather(  # type: ignore[return-value]
            self.infer("st_clip", {"IMAGE_JPEG": images, "ST_CONTEXT": st_context.astype(np.float32)}, ST_CLIP_OUTPUTS),
            self.infer("sa_clip", {"IMAGE_JPEG": images}, SA_CLIP_OUTPUTS),
            self.infer("scene_graph", {"IMAGE_JPEG": images}, SCENE_GRAPH_OUTPUTS),
        )


class _Transient(Exception):
    """A failed request that Triton, with the model ready, may serve if asked again."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _tensor(name: str, arr: np.ndarray) -> grpcclient.InferInput:
    dtype = "BYTES" if arr.dtype == np.object_ else "FP32"
    tensor = grpcclient.InferInput(name, list(arr.shape), dtype)
    tensor.set_data_from_numpy(arr)
    return tensor
