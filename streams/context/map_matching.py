"""Online map matching: each vehicle's GPS fixes onto directed road segments, with a fixed-lag HMM.

The hidden states are candidate positions on segments near each fix (a spatial index finds them).
Emission: Gaussian in the distance from the fix to the segment, plus agreement of the GPS heading
with the segment's direction (which tells the two directions of a two-way road apart). Transition:
the route distance along the graph should match the straight-line distance between fixes
(Newson & Krumm, 2009). Viterbi runs incrementally per vehicle and commits a fix's segment once
``lag`` newer fixes have arrived. Out-of-order fixes older than the newest one cannot join the chain;
they are matched on their own (emission only) and flagged.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from shapely import LineString, Point, STRtree

from streams.context.road_network import RoadNetwork, Segment

MAX_SPEED_MPS = 50.0  # no vehicle covers more route distance than this per second (plus slack)
ROUTE_SLACK_M = 60.0


@dataclass(frozen=True)
class Fix:
    """One GPS fix in local metres."""

    ts: datetime
    x: float
    y: float
    speed_mps: float | None = None
    heading_deg: float | None = None


@dataclass(frozen=True)
class Candidate:
    """A position on a segment that a fix may stand for."""

    segment: int
    offset_m: float
    distance_m: float
    bearing_deg: float


@dataclass(frozen=True)
class Match:
    """A committed decision: where on the network a fix was."""

    fix: Fix
    segment: Segment
    offset_m: float
    distance_m: float
    in_order: bool = True  # False: a late fix matched on its own


class SegmentIndex:
    """Finds segment pieces near a point: an STRtree over every polyline piece, then numpy geometry."""

    def __init__(self, network: RoadNetwork):
        self.network = network
        a, b, owner, start = [], [], [], []
        for seg in network.segments:
            cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(seg.xy, axis=0).T))])
            for i in range(len(seg.xy) - 1):
                a.append(seg.xy[i])
                b.append(seg.xy[i + 1])
                owner.append(seg.index)
                start.append(cum[i])
        ab = np.array(b) - np.array(a)
        len2 = np.maximum((ab**2).sum(1), 1e-12)
        self._pieces = [
            (float(p[0]), float(p[1]), float(q[0]), float(q[1]), float(n)) for p, q, n in zip(a, ab, len2, strict=True)
        ]
        self._bearing = (np.degrees(np.arctan2(ab[:, 0], ab[:, 1])) % 360).tolist()
        self._owner = owner
        self._start = [float(v) for v in start]
        self._tree = STRtree([LineString([p, q]) for p, q in zip(a, b, strict=True)])

    def candidates(self, x: float, y: float, radius_m: float, limit: int = 8) -> list[Candidate]:
        """The nearest position on every segment within ``radius_m``, closest ``limit`` first."""
        best: dict[int, tuple[float, float, float]] = {}
        # A handful of pieces per query: plain Python beats numpy's per-call overhead here.
        for k in self._tree.query(Point(x, y), predicate="dwithin", distance=radius_m).tolist():
            ax, ay, dx, dy, len2 = self._pieces[k]
            t = min(1.0, max(0.0, ((x - ax) * dx + (y - ay) * dy) / len2))
            d = math.hypot(ax + t * dx - x, ay + t * dy - y)
            seg = self._owner[k]
            if seg not in best or d < best[seg][0]:
                best[seg] = (d, self._start[k] + t * math.sqrt(len2), self._bearing[k])
        ranked = sorted(best.items(), key=lambda kv: kv[1][0])[:limit]
        return [Candidate(seg, off, d, bearing) for seg, (d, off, bearing) in ranked]


class RouteDistances:
    """Network distance from the start of a segment to the start of others, within a bound (cached)."""

    def __init__(self, network: RoadNetwork, bound_m: float = 2000.0, cache_size: int = 4096):
        self.network = network
        self.bound_m = bound_m
        self._cache: OrderedDict[int, dict[int, float]] = OrderedDict()
        self._cache_size = cache_size

    def _from(self, source: int) -> dict[int, float]:
        hit = self._cache.get(source)
        if hit is not None:
            self._cache.move_to_end(source)
            return hit
        segments = self.network.segments
        dist = {source: 0.0}
        done: dict[int, float] = {}
        heap = [(0.0, source)]
        while heap:
            d, s = heapq.heappop(heap)
            if s in done or d > self.bound_m:
                continue
            done[s] = d
            for nxt in segments[s].successors:
                nd = d + segments[s].length_m
                if nd < dist.get(nxt, math.inf) and nxt != source:
                    dist[nxt] = nd
                    heapq.heappush(heap, (nd, nxt))
        self._cache[source] = done
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return done

    def between(self, a: Candidate, b: Candidate, backtrack_m: float) -> float | None:
        """Route distance from position ``a`` to ``b``; a small step back on one segment counts as 0."""
        if a.segment == b.segment and b.offset_m >= a.offset_m - backtrack_m:
            return max(0.0, b.offset_m - a.offset_m)
        d = self._from(a.segment).get(b.segment)
        return None if d is None else d - a.offset_m + b.offset_m


@dataclass
class _Column:
    fix: Fix
    candidates: list[Candidate]
    scores: np.ndarray  # log probability of the best path ending in each candidate
    back: np.ndarray  # index of the best predecessor in the previous column (-1: chain start)


@dataclass
class VehicleMatcher:
    """Fixed-lag Viterbi over one vehicle's fixes."""

    index: SegmentIndex
    routes: RouteDistances
    sigma_m: float = 5.0  # GPS noise per axis
    beta_m: float = 5.0  # tolerance of route-versus-straight distance differences
    lag: int = 2
    heading_kappa: float = 2.0  # weight of heading agreement (von Mises concentration)
    _columns: list[_Column] = field(default_factory=list)
    _last_ts: datetime | None = None

    @property
    def search_radius_m(self) -> float:
        """How far from a fix candidate segments are looked for (4 sigma, at least a street's width)."""
        return max(4 * self.sigma_m, 25.0)

    def _emission(self, fix: Fix, c: Candidate) -> float:
        score = -0.5 * (c.distance_m / self.sigma_m) ** 2
        if fix.heading_deg is not None and (fix.speed_mps or 0.0) > 2.0:
            score += self.heading_kappa * (math.cos(math.radians(fix.heading_deg - c.bearing_deg)) - 1)
        return score

    def _transition(self, prev: _Column, col_fix: Fix, b: Candidate) -> tuple[float, int]:
        dt = max((col_fix.ts - prev.fix.ts).total_seconds(), 0.0)
        straight = math.hypot(col_fix.x - prev.fix.x, col_fix.y - prev.fix.y)
        limit = MAX_SPEED_MPS * dt + ROUTE_SLACK_M
        best, arg = -math.inf, -1
        for i, a in enumerate(prev.candidates):
            if prev.scores[i] == -math.inf:
                continue
            route = self.routes.between(a, b, backtrack_m=3 * self.sigma_m)
            if route is None or route > limit:
                continue
            score = prev.scores[i] - abs(route - straight) / self.beta_m
            if score > best:
                best, arg = score, i
        return best, arg

    def push(self, fix: Fix) -> list[Match]:
        """Add a fix; returns the matches committed by it (in time order)."""
        if self._last_ts is not None and fix.ts <= self._last_ts:
            single = self.match_alone(fix)
            return [single] if single is not None else []
        self._last_ts = fix.ts
        cands = self.index.candidates(fix.x, fix.y, self.search_radius_m)
        if not cands:
            return self.flush()  # off the network: close the chain
        emissions = np.array([self._emission(fix, c) for c in cands])
        committed: list[Match] = []
        if self._columns:
            prev = self._columns[-1]
            pairs = [self._transition(prev, fix, c) for c in cands]
            scores = np.array([p[0] for p in pairs]) + emissions
            back = np.array([p[1] for p in pairs])
            if np.all(np.isinf(scores)):
                committed = self.flush()  # no route explains the move (e.g. a long outage): new chain
                scores, back = emissions, np.full(len(cands), -1)
        else:
            scores, back = emissions, np.full(len(cands), -1)
        self._columns.append(_Column(fix, cands, scores - scores.max(), back))
        if len(self._columns) > self.lag:
            committed.append(self._commit_oldest())
        return committed

    def _path(self) -> list[int]:
        last = self._columns[-1]
        state = int(np.argmax(last.scores))
        path = [state]
        for col in reversed(self._columns[1:]):
            state = int(col.back[state])
            path.append(state)
        return path[::-1]

    def _commit_oldest(self) -> Match:
        # The oldest fix takes its state on today's best path; later evidence can no longer change it.
        state = self._path()[0]
        col = self._columns.pop(0)
        self._columns[0].back = np.full(len(self._columns[0].candidates), -1)
        c = col.candidates[state]
        return Match(col.fix, self.index.network.segments[c.segment], c.offset_m, c.distance_m)

    def tentative(self) -> list[Match]:
        """The pending fixes on today's best path: the newest positions, which later fixes may still change."""
        if not self._columns:
            return []
        out = []
        for col, state in zip(self._columns, self._path(), strict=True):
            c = col.candidates[state]
            out.append(Match(col.fix, self.index.network.segments[c.segment], c.offset_m, c.distance_m))
        return out

    def flush(self) -> list[Match]:
        """Commit every pending fix (end of a chain or of the stream)."""
        out = self.tentative()
        self._columns = []
        return out

    def match_alone(self, fix: Fix) -> Match | None:
        """A fix matched by its emission alone (nearest segment agreeing with its heading)."""
        cands = self.index.candidates(fix.x, fix.y, self.search_radius_m)
        if not cands:
            return None
        c = max(cands, key=lambda c: self._emission(fix, c))
        return Match(fix, self.index.network.segments[c.segment], c.offset_m, c.distance_m, in_order=False)
