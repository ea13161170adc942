"""Alert evidence: the JPEGs of the frames an alert stood on, kept (for ``evidence.keep_days``) where
operators fetch them by alert id (``fleetscope alerts show``).

Fusion names the frames and what to draw on them (``fusion.evidence``). The JPEGs do not travel
with the scenes; each is read back from its place in ``fleet.frames`` by a side consumer (alerts are
rare: one fetch per frame), checked to be the frame named, and kept in the configured store:

- ``postgres`` (the default): the ``alert_evidence`` table, which every worker and operator already
  reaches; the dashboards' read-only role may not read it (camera images of the public).
- ``directory``: ``<directory>/<incident id>/<hash of the frame id>.jpg`` and ``.json``, for a volume
  every worker and operator shares, or a bucket mounted as one.

Keeping evidence must never stop the pipeline: a frame no longer in Kafka or a store that refuses
is counted (``fleetscope_evidence_frames_total``) and logged, and the alert goes out without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import aiokafka
import sqlalchemy as sa
from faust.types import AppT
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from fusion.evidence import EvidenceFrame
from records.messages import Frame, decode
from streams import metrics, topics
from streams.side_consumer import side_consumer
from streams.sinks.tables import alert_evidence

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 10.0  # per frame read back from fleet.frames


@dataclass(frozen=True)
class StoredFrame:
    """An evidence frame as kept: its JPEG and what to draw on it."""

    incident_id: str
    frame_id: str
    alert_type: str
    vehicle_id: str
    captured_at: datetime
    jpeg: bytes
    drawing: dict[str, Any]


class FrameReader:
    """Reads frames back from ``fleet.frames`` at their positions (one side consumer, started when first needed)."""

    def __init__(self, app: AppT, topic: str) -> None:
        self.app, self.topic = app, topic
        self._reader: aiokafka.AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def read(self, frames: Sequence[EvidenceFrame]) -> list[StoredFrame]:
        """The frames found where their positions say, with their JPEGs; the others are counted and left out."""
        out = []
        async with self._lock:
            for f in frames:
                try:
                    frame = await asyncio.wait_for(self._frame_at(f.source.partition, f.source.offset), READ_TIMEOUT_S)
                except Exception as exc:  # TimeoutError included: past retention, or the broker away
                    metrics.EVIDENCE_FRAMES.labels("unavailable").inc()
                    log.warning("evidence frame %s not read back from %s: %s", f.frame_id, self.topic, exc)
                    continue
                if frame is None or frame.frame_id != f.frame_id:
                    metrics.EVIDENCE_FRAMES.labels("unavailable").inc()
                    where = f"{self.topic}[{f.source.partition}]@{f.source.offset}"
                    log.warning("evidence frame %s is not at %s", f.frame_id, where)
                    continue
                out.append(
                    StoredFrame(
                        f.incident_id, f.frame_id, f.alert_type, f.vehicle_id, f.captured_at, frame.jpeg, f.drawing
                    )
                )
        return out

    async def _frame_at(self, partition: int, offset: int) -> Frame | None:
        if self._reader is None:
            reader = side_consumer(self.app)
            try:
                await reader.start()
            except BaseException:  # a half-started consumer cannot seek: start afresh next time
                with contextlib.suppress(Exception):  # the start's error is the one to report
                    await reader.stop()
                raise
            self._reader = reader
        tp = aiokafka.TopicPartition(self.topic, partition)
        self._reader.assign([tp])
        self._reader.seek(tp, offset)
        while True:
            got = (await self._reader.getmany(tp, timeout_ms=500, max_records=1)).get(tp, [])
            if got:
                record = got[0]
                return decode(Frame, record.value) if record.offset == offset else None

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None


class EvidenceStore(Protocol):
    """Where evidence frames are kept."""

    async def put(self, frames: Sequence[StoredFrame]) -> None: ...

    async def prune(self, older_than: datetime) -> int: ...


class PostgresEvidence:
    """Evidence in the ``alert_evidence`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def put(self, frames: Sequence[StoredFrame]) -> None:
        rows = [
            {
                "incident_id": f.incident_id,
                "frame_id": f.frame_id,
                "alert_type": f.alert_type,
                "vehicle_id": f.vehicle_id,
                "captured_at": f.captured_at,
                "jpeg": f.jpeg,
                "drawing": f.drawing,
            }
            for f in frames
        ]
        async with self.engine.begin() as conn:
            await conn.execute(insert(alert_evidence).on_conflict_do_nothing(), rows)

    async def prune(self, older_than: datetime) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.delete(alert_evidence).where(alert_evidence.c.stored_at < older_than))
        return int(result.rowcount)


def frame_file(root: Path, incident_id: str, frame_id: str) -> Path:
    """Where the directory store keeps a frame (ids are any text: the frame's name is a hash of its id)."""
    return root / _name(incident_id) / _name(frame_id)


_NAME = re.compile(r"[0-9a-f]{32}")


def _name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class DirectoryEvidence:
    """Evidence as files: a JPEG and a JSON description per frame, one folder per vehicle incident."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, frames: Sequence[StoredFrame]) -> None:
        await asyncio.to_thread(self._put, frames)

    def _put(self, frames: Sequence[StoredFrame]) -> None:
        for f in frames:
            path = frame_file(self.root, f.incident_id, f.frame_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {
                "incident_id": f.incident_id,
                "frame_id": f.frame_id,
                "alert_type": f.alert_type,
                "vehicle_id": f.vehicle_id,
                "captured_at": f.captured_at.isoformat(),
                "drawing": f.drawing,
            }
            path.with_suffix(".jpg").write_bytes(f.jpeg)
            path.with_suffix(".json").write_text(json.dumps(meta))  # written last: a frame is complete once it exists

    async def prune(self, older_than: datetime) -> int:
        return await asyncio.to_thread(self._prune, older_than.timestamp())

    def _prune(self, before: float) -> int:
        removed = 0
        for folder in self.root.glob("*"):
            if not _NAME.fullmatch(folder.name):  # not an incident's folder: never ours to delete
                continue
            try:
                files = list(folder.iterdir())
                if files and all(p.stat().st_mtime < before for p in files):
                    shutil.rmtree(folder)
                    removed += 1
            except OSError:  # another worker pruning the same share, or a frame being written
                continue
        return removed


def evidence_directory(settings: Settings) -> Path:
    return settings.evidence.directory or settings.stack.run_dir / "evidence"


def evidence_store(settings: Settings, engine: AsyncEngine) -> EvidenceStore | None:
    """The configured store (None: evidence is off)."""
    store = settings.evidence.store
    if store == "postgres":
        return PostgresEvidence(engine)
    if store == "directory":
        return DirectoryEvidence(evidence_directory(settings))
    return None


class Evidence:
    """Reads the JPEGs of alerted frames back and keeps them; prunes what is older than ``keep_days``."""

    def __init__(self, settings: Settings, app: AppT, store: EvidenceStore) -> None:
        self.store = store
        self.keep = timedelta(days=settings.evidence.keep_days)
        self.reader = FrameReader(app, settings.topic(topics.FRAMES))

    async def keep_frames(self, frames: Sequence[EvidenceFrame]) -> None:
        """Read back and store ``frames``; failures are counted and logged, never raised."""
        if not frames:
            return
        found = await self.reader.read(frames)
        try:
            if found:
                await self.store.put(found)
        except Exception as exc:
            metrics.EVIDENCE_FRAMES.labels("store_failed").inc(len(found))
            log.warning("%d evidence frames not stored: %s", len(found), str(exc).splitlines()[0])
            return
        metrics.EVIDENCE_FRAMES.labels("stored").inc(len(found))

    async def prune(self) -> None:
        """Delete evidence stored longer ago than ``keep_days``."""
        began = time.monotonic()
        removed = await self.store.prune(datetime.now(timezone.utc) - self.keep)
        if removed:
            log.info("evidence: %d old entries deleted in %.1f s", removed, time.monotonic() - began)

    async def close(self) -> None:
        await self.reader.close()


@dataclass(frozen=True)
class StoredAlert:
    """An alert as PostgreSQL holds it, with the evidence frames kept for its vehicle incidents."""

    row: dict[str, Any]
    frames: list[StoredFrame]


def read_alert(settings: Settings, alert_id: str) -> StoredAlert | None:
    """The alert with this id (or holding this vehicle incident) and its evidence, oldest frame first;
    None when there is no such alert. Synchronous: for tools, not for the worker."""
    from sqlalchemy.dialects.postgresql import ARRAY

    from streams.sinks.tables import alerts

    engine = sa.create_engine(settings.postgres.url("psycopg"))
    try:
        with engine.connect() as conn:
            holds = alerts.c.vehicle_incidents.op("@>")(sa.cast([alert_id], ARRAY(sa.Text)))
            row = conn.execute(sa.select(alerts).where(sa.or_(alerts.c.alert_id == alert_id, holds))).mappings().first()
            if row is None:
                return None
            incidents = list(row["vehicle_incidents"]) or [row["alert_id"]]
            if settings.evidence.store == "postgres":
                query = sa.select(alert_evidence).where(alert_evidence.c.incident_id.in_(incidents))
                frames = [
                    StoredFrame(
                        r.incident_id, r.frame_id, r.alert_type, r.vehicle_id, r.captured_at, bytes(r.jpeg), r.drawing
                    )
                    for r in conn.execute(query)
                ]
            elif settings.evidence.store == "directory":
                frames = _read_directory(evidence_directory(settings), incidents)
            else:
                frames = []
    finally:
        engine.dispose()
    return StoredAlert(dict(row), sorted(frames, key=lambda f: (f.captured_at, f.vehicle_id)))


def _read_directory(root: Path, incidents: list[str]) -> list[StoredFrame]:
    out = []
    for incident_id in incidents:
        for meta_file in sorted((root / _name(incident_id)).glob("*.json")):
            meta = json.loads(meta_file.read_text())
            out.append(
                StoredFrame(
                    meta["incident_id"],
                    meta["frame_id"],
                    meta["alert_type"],
                    meta["vehicle_id"],
                    datetime.fromisoformat(meta["captured_at"]),
                    meta_file.with_suffix(".jpg").read_bytes(),
                    meta["drawing"],
                )
            )
    return out
