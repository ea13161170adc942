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

from roads.network import RoadNetwork, Segment

MAX_SPEED_MPS = 50.0  # no vehicle covers more route distance than this per second (plus slack)
ROUTE_SLACK_M = 60.0
_GRID_CELL_M = 10.0  # side of SegmentIndex's cells: smaller ones list fewer far pieces per cell, in more memory

# A polyline piece as queries read it: start x, y; direction dx, dy; squared length, length; offset of its
# start along its segment; the segment's index; bearing in degrees.
_Piece = tuple[float, float, float, float, float, float, float, int, float]


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
    """Finds segment pieces near a point: a uniform grid whose cells list the pieces that may lie within
    the search radius of a point in the cell, then plain-Python geometry on those few pieces."""

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
        bearing = np.degrees(np.arctan2(ab[:, 0], ab[:, 1])) % 360
        # Plain tuples (see _Piece): unpacking one costs less than numpy indexing or attribute lookups.
        self._pieces: list[_Piece] = [
            (float(p[0]), float(p[1]), float(q[0]), float(q[1]), float(n), math.sqrt(n), float(s), o, float(h))
            for p, q, n, s, o, h in zip(a, ab, len2, start, owner, bearing, strict=True)
        ]
        self._grids: dict[float, dict[tuple[int, int], list[_Piece]]] = {}

    def _grid(self, radius_m: float) -> dict[tuple[int, int], list[_Piece]]:
        """Cell -> the pieces that may lie within ``radius_m`` of a point in it, in network order (built once)."""
        grid = self._grids.get(radius_m)
        if grid is not None:
            return grid
        grid = {}
        cell = _GRID_CELL_M
        # Every point of a cell is within half a diagonal (less than one side) of its centre.
        reach = radius_m + cell
        for piece in self._pieces:
            ax, ay, dx, dy, len2 = piece[:5]
            for ix in range(int((min(ax, ax + dx) - reach) // cell), int((max(ax, ax + dx) + reach) // cell) + 1):
                for iy in range(int((min(ay, ay + dy) - reach) // cell), int((max(ay, ay + dy) + reach) // cell) + 1):
                    cx, cy = (ix + 0.5) * cell, (iy + 0.5) * cell
                    t = min(1.0, max(0.0, ((cx - ax) * dx + (cy - ay) * dy) / len2))
                    if math.hypot(ax + t * dx - cx, ay + t * dy - cy) <= reach:
                        grid.setdefault((ix, iy), []).append(piece)
        self._grids[radius_m] = grid
        return grid

    def candidates(self, x: float, y: float, radius_m: float, limit: int = 8) -> list[Candidate]:
        """The nearest position on every segment within ``radius_m``, closest ``limit`` first."""
        best: dict[int, tuple[float, float, float]] = {}
        cell = _GRID_CELL_M
        for ax, ay, dx, dy, len2, length, start, seg, bearing in self._grid(radius_m).get(
            (int(x // cell), int(y // cell)), ()
        ):
            # The projection onto the piece, clamped to its ends (if-chains: min/max calls cost more here).
            t = ((x - ax) * dx + (y - ay) * dy) / len2
            if t < 0.0:
                t = 0.0
            elif t > 1.0:
                t = 1.0
            d = math.hypot(ax + t * dx - x, ay + t * dy - y)
            if d > radius_m:
                continue
            # Pieces come in network order: a tie between two pieces of a segment (a point beyond their
            # shared end) goes to the earlier one, and equally near segments (the two directions of a
            # two-way road) rank by segment index.
            known = best.get(seg)
            if known is None or d < known[0]:
                best[seg] = (d, start + t * length, bearing)
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
        return self.between_all(a, [b], backtrack_m)[0]

    def between_all(self, a: Candidate, bs: list[Candidate], backtrack_m: float) -> list[float | None]:
        """``between(a, b, backtrack_m)`` for every ``b`` in ``bs`` (looks up the distances from ``a`` once)."""
        segment, offset, floor = a.segment, a.offset_m, a.offset_m - backtrack_m
        reach: dict[int, float] | None = None  # looked up only if some b needs the graph
        out: list[float | None] = []
        for b in bs:
            if b.segment == segment and b.offset_m >= floor:
                out.append(max(0.0, b.offset_m - offset))
                continue
            if reach is None:
                reach = self._from(segment)
            d = reach.get(b.segment)
            out.append(None if d is None else d - offset + b.offset_m)
        return out


@dataclass(slots=True)
class _Column:
    fix: Fix
    candidates: list[Candidate]
    scores: list[float]  # log probability of the best path ending in each candidate (best: 0)
    back: list[int]  # index of the best predecessor in the previous column (-1: chain start)


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

    def _emissions(self, fix: Fix, cands: list[Candidate]) -> list[float]:
        """Log emission score of each candidate: distance, and heading agreement when the fix is moving."""
        sigma, kappa = self.sigma_m, self.heading_kappa
        heading = fix.heading_deg if (fix.speed_mps or 0.0) > 2.0 else None
        out = []
        for c in cands:
            score = -0.5 * (c.distance_m / sigma) ** 2
            if heading is not None:
                score += kappa * (math.cos(math.radians(heading - c.bearing_deg)) - 1)
            out.append(score)
        return out

    def _transitions(self, prev: _Column, fix: Fix, cands: list[Candidate]) -> tuple[list[float], list[int]]:
        """For each candidate: the best score of reaching it from ``prev``, and from which candidate (-1: none)."""
        dt = max((fix.ts - prev.fix.ts).total_seconds(), 0.0)
        straight = math.hypot(fix.x - prev.fix.x, fix.y - prev.fix.y)
        limit = MAX_SPEED_MPS * dt + ROUTE_SLACK_M
        backtrack, beta = 3 * self.sigma_m, self.beta_m
        best, arg = [-math.inf] * len(cands), [-1] * len(cands)
        for i, (a, prior) in enumerate(zip(prev.candidates, prev.scores, strict=True)):
            if prior == -math.inf:
                continue
            for j, route in enumerate(self.routes.between_all(a, cands, backtrack)):
                if route is None or route > limit:
                    continue
                score = prior - abs(route - straight) / beta
                if score > best[j]:  # strictly: ties keep the earliest predecessor
                    best[j], arg[j] = score, i
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
        emissions = self._emissions(fix, cands)
        committed: list[Match] = []
        scores, back = emissions, [-1] * len(cands)
        if self._columns:
            best, arg = self._transitions(self._columns[-1], fix, cands)
            if max(best) == -math.inf:
                committed = self.flush()  # no route explains the move (e.g. a long outage): new chain
            else:
                scores, back = [t + e for t, e in zip(best, emissions, strict=True)], arg
        top = max(scores)
        self._columns.append(_Column(fix, cands, [s - top for s in scores], back))
        if len(self._columns) > self.lag:
            committed.append(self._commit_oldest())
        return committed

    def _path(self) -> list[int]:
        scores = self._columns[-1].scores
        state = scores.index(max(scores))  # the first best, as argmax would
        path = [state]
        for col in reversed(self._columns[1:]):
            state = col.back[state]
            path.append(state)
        return path[::-1]

    def _commit_oldest(self) -> Match:
        # The oldest fix takes its state on today's best path; later evidence can no longer change it.
        state = self._path()[0]
        col = self._columns.pop(0)
        self._columns[0].back = [-1] * len(self._columns[0].candidates)
        c = col.candidates[state]
        return Match(col.fix, self.index.network.segments[c.segment], c.offset_m, c.distance_m)

    def holds(self, ts: datetime) -> bool:
        """Whether a fix of this time is pending (pushed, not yet committed)."""
        return any(col.fix.ts == ts for col in self._columns)

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
        emissions = self._emissions(fix, cands)
        c = cands[emissions.index(max(emissions))]
        return Match(fix, self.index.network.segments[c.segment], c.offset_m, c.distance_m, in_order=False)
