"""Every vehicle's track on the road network: its online map matcher, kinematics and recent positions.

A per-worker cache, like the GPS fixes it is built from: fleet.gps is keyed by vehicle, so the worker
that owns a vehicle sees all of its fixes. A partition a worker takes over is warmed up from its
history first (``warm``, ``streams.context.warmup``), so that its vehicles' chains go on as they
would have at their old owner. A fix delivered again (at-least-once, after a rebalance) is
recognised and skipped (``repeated``): matched again on its own it could land on another segment.
The frame join asks where a vehicle was at a fix's time: the committed match if
there is one, else the tentative position on the current best path (the matcher commits with a lag).

A vehicle that falls silent has its pending fixes committed. Silence is measured on the stream the
fixes come from (a partition), so that what is committed does not depend on how fast a worker
reads: in event time, once that stream has moved ``idle_s`` past the vehicle's newest fix; in wall
time, once the stream itself has been quiet that long with nothing waiting (``flush_idle``: the end
of a drive or of the data). A wall-clock silence per vehicle made a busy worker cut chains that an
idle one did not, so two workers could count a fix on different segments.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import OrderedDict
from collections.abc import Container, Generator, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from records.messages import GpsFix, ObservedFix
from roads.network import RoadNetwork, Segment
from streams.context.kinematics import VehicleKinematics
from streams.context.map_matching import Fix, Match, RouteDistances, SegmentIndex, VehicleMatcher


@dataclass(frozen=True)
class TrackPoint:
    """A committed position of a vehicle, with what GPS says about its motion there."""

    vehicle_id: str
    ts: datetime
    segment: Segment
    offset_m: float
    speed_mps: float | None  # None for a late fix without receiver speed
    accel_mps2: float | None
    hard_braking: bool
    in_order: bool

    def observation(self) -> ObservedFix:
        """This position as its segment's windows count it."""
        return ObservedFix(
            vehicle_id=self.vehicle_id, ts=self.ts, speed_mps=self.speed_mps, hard_braking=self.hard_braking
        )


@dataclass(frozen=True)
class Located:
    """Where a vehicle was at one fix's time."""

    segment: Segment
    offset_m: float
    committed: bool  # False: tentative, the matcher may still revise it


@dataclass
class _Track:
    matcher: VehicleMatcher
    kinematics: VehicleKinematics
    committed: OrderedDict[datetime, Match]
    source: Hashable = None  # the stream its fixes come from
    newest_ts: float = -math.inf  # epoch seconds of its newest fix


@dataclass
class _Source:
    """One stream of fixes (a partition): how far it has got, and when it last delivered."""

    newest_ts: float = -math.inf  # epoch seconds of the newest fix of any vehicle
    arrived: float = 0.0  # monotonic time of its latest fix
    waiting: list[tuple[float, str]] = field(default_factory=list)  # heap of (a vehicle's newest fix, vehicle)


class VehicleTracks:
    """The tracks of every vehicle this worker has seen (a bounded number of recent positions each)."""

    def __init__(
        self,
        network: RoadNetwork,
        sigma_m: float = 5.0,
        keep: int = 120,
        idle_s: float | None = None,
        max_vehicles: int | None = None,
    ) -> None:
        self.network = network
        self.index = SegmentIndex(network)
        self.routes = RouteDistances(network)
        self.sigma_m = sigma_m
        self.keep = keep
        self.idle_s = idle_s  # None: only flush_idle commits a silent vehicle (offline replays)
        self.max_vehicles = max_vehicles  # None: unbounded (offline replays of a known fleet)
        self._tracks: OrderedDict[str, _Track] = OrderedDict()  # least recently fed first
        self._sources: dict[Hashable, _Source] = {}
        self.repeated = 0  # fixes skipped because this track already held them
        self.forgotten = 0  # vehicles forgotten past max_vehicles
        self._replaying = False  # a warm-up is pushing: what it commits is not sent, so nothing is trimmed

    def _track(self, vehicle_id: str) -> _Track:
        """The vehicle's track, now the most recently fed."""
        track = self._tracks.get(vehicle_id)
        if track is not None:
            self._tracks.move_to_end(vehicle_id)
            return track
        matcher = VehicleMatcher(self.index, self.routes, sigma_m=self.sigma_m)
        track = self._tracks[vehicle_id] = _Track(matcher, VehicleKinematics(self.routes), OrderedDict())
        return track

    def trim(self) -> list[TrackPoint]:
        """Forget the least recently fed vehicles past ``max_vehicles``; return the positions their
        pending fixes commit (they are not lost). ``push_all`` trims after each call; a warm-up
        trims once its replay is done, and sends what that commits."""
        points: list[TrackPoint] = []
        while self.max_vehicles is not None and len(self._tracks) > self.max_vehicles:
            vehicle_id, track = self._tracks.popitem(last=False)
            self.forgotten += 1
            points += self._commit(vehicle_id, track, track.matcher.flush())
        return points

    def push_all(self, fixes: Sequence[GpsFix], sources: Sequence[Hashable] | None = None) -> list[TrackPoint]:
        """Add fixes in the order given (one projection call for all of them); return the positions committed.

        ``sources[i]`` names the stream fix ``i`` came from (its partition); fixes of one stream must
        be given in the order the stream holds them. Without ``sources`` all come from one stream."""
        if not fixes:
            return []
        xs, ys = self.network.projection.to_xy(np.array([f.lat for f in fixes]), np.array([f.lon for f in fixes]))
        now = time.monotonic()
        points = []
        for i, (f, x, y) in enumerate(zip(fixes, xs.tolist(), ys.tolist(), strict=True)):
            key = sources[i] if sources is not None else None
            source = self._sources.get(key)
            if source is None:
                source = self._sources[key] = _Source()
            source.arrived = now
            ts = f.ts.timestamp()
            if ts > source.newest_ts:
                source.newest_ts = ts
                points += self._commit_silent(source)
            track = self._track(f.vehicle_id)
            track.source = key
            if f.ts in track.committed or track.matcher.holds(f.ts):
                self.repeated += 1
                continue
            if ts > track.newest_ts:
                track.newest_ts = ts
                if self.idle_s is not None:
                    heapq.heappush(source.waiting, (ts, f.vehicle_id))
            points += self._commit(f.vehicle_id, track, track.matcher.push(Fix(f.ts, x, y, f.speed_mps, f.heading_deg)))
        if not self._replaying:
            points += self.trim()
        return points

    def sources(self) -> set[Hashable]:
        """The streams (partitions) this worker holds tracks from."""
        return set(self._sources)

    def keep_sources(self, keep: Container[Hashable]) -> None:
        """Forget the vehicles of every stream not in ``keep`` (partitions this worker no longer owns)."""
        for key in [k for k in self._sources if k not in keep]:
            del self._sources[key]
        for vehicle_id in [v for v, t in self._tracks.items() if t.source not in keep]:
            del self._tracks[vehicle_id]

    def warm(self, fixes: Sequence[GpsFix], source: Hashable, quiet_after: Iterable[int] = ()) -> int:
        """Replay a stream's history (in stream order) into the tracks of vehicles not held yet; return
        how many fixes were replayed. ``quiet_after`` lists the fixes after which the stream went quiet
        for ``idle_s`` or more: its owner committed the pending fixes there (``flush_idle``), and so does
        the replay. What the replay commits was committed by the stream's previous owner, so it is not
        returned; the fixes still pending at the end are committed by the live fixes that follow (or by
        ``flush_source``, sent, where the history ends in a pause: ``streams.context.warmup.replay``). The
        replay forgets no vehicle: call ``trim`` after it and send what that commits."""
        return max(self.warm_steps(fixes, source, quiet_after), default=0)

    def warm_steps(
        self, fixes: Sequence[GpsFix], source: Hashable, quiet_after: Iterable[int] = (), step: int = 2000
    ) -> Generator[int, None, None]:
        """``warm`` a ``step`` of fixes at a time, yielding how many were replayed so far after each, so
        that an event loop can run between steps; the replay is complete once the iterator is. Until
        it is exhausted or closed, no push trims."""
        held = set(self._tracks)
        cuts = set(quiet_after)
        run: list[GpsFix] = []
        replayed = 0
        self._replaying = True  # between steps too: live fixes pushed meanwhile must not trim the replay
        try:
            for i, fix in enumerate(fixes):
                if fix.vehicle_id not in held:
                    run.append(fix)
                if i in cuts or len(run) >= step or i == len(fixes) - 1:
                    self.push_all(run, [source] * len(run))
                    replayed += len(run)
                    run = []
                    if i in cuts:
                        self.flush_source(source)
                    yield replayed
        finally:
            self._replaying = False

    def flush_source(self, source: Hashable) -> list[TrackPoint]:
        """Commit the pending fixes of every vehicle whose fixes come from ``source``."""
        points = []
        for vehicle_id, track in self._tracks.items():
            if track.source == source:
                points += self._commit(vehicle_id, track, track.matcher.flush())
        return points

    def _commit_silent(self, source: _Source) -> list[TrackPoint]:
        """Commit the vehicles whose newest fix is ``idle_s`` behind the newest of their stream."""
        points: list[TrackPoint] = []
        if self.idle_s is None:
            return points
        horizon = source.newest_ts - self.idle_s
        while source.waiting and source.waiting[0][0] <= horizon:
            ts, vehicle_id = heapq.heappop(source.waiting)
            track = self._tracks.get(vehicle_id)  # None: forgotten with a partition given up
            if track is not None and track.newest_ts == ts:  # else a newer fix has an entry of its own
                points += self._commit(vehicle_id, track, track.matcher.flush())
        return points

    def flush_idle(self, idle_s: float, busy: Container[Hashable] = ()) -> list[TrackPoint]:
        """Commit the pending fixes of vehicles whose stream delivered nothing for ``idle_s`` (0: every
        vehicle), unless the stream is ``busy``: it has records waiting, and a worker too slow to read
        them must not decide for the data that its vehicles fell silent."""
        now = time.monotonic()
        quiet = {k for k, source in self._sources.items() if now - source.arrived >= idle_s and k not in busy}
        points = []
        for vehicle_id, track in self._tracks.items():
            if track.source in quiet:
                points += self._commit(vehicle_id, track, track.matcher.flush())
        return points

    def _commit(self, vehicle_id: str, track: _Track, matches: Iterable[Match]) -> list[TrackPoint]:
        points = []
        for m in matches:
            track.committed[m.fix.ts] = m
            speed: float | None
            if m.in_order:
                k = track.kinematics.update(m)
                speed, accel, braking = k.speed_mps, k.accel_mps2, k.hard_braking
            else:  # a late fix: its neighbours' kinematics are settled, so it only reports its own speed
                speed, accel, braking = m.fix.speed_mps, None, False
            points.append(TrackPoint(vehicle_id, m.fix.ts, m.segment, m.offset_m, speed, accel, braking, m.in_order))
        while len(track.committed) > self.keep:
            track.committed.popitem(last=False)
        return points

    def located(self, vehicle_id: str, fix_ts: datetime) -> Located | None:
        """Where the vehicle was at the time of one of its fixes, or None if that fix matched no segment."""
        track = self._tracks.get(vehicle_id)
        if track is None:
            return None
        m = track.committed.get(fix_ts)
        if m is not None:
            return Located(m.segment, m.offset_m, committed=True)
        for m in track.matcher.tentative():
            if m.fix.ts == fix_ts:
                return Located(m.segment, m.offset_m, committed=False)
        return None
