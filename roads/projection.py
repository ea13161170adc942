"""Lat/lon to local metres and back: the flat frame the road network, the simulator and map matching work in."""

from __future__ import annotations

from typing import Any

from pyproj import Transformer


class Projection:
    """Lat/lon to local metres (azimuthal equidistant around the network's centre) and back."""

    def __init__(self, lat0: float, lon0: float):
        self.lat0, self.lon0 = lat0, lon0
        local = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
        self._fwd = Transformer.from_crs("EPSG:4326", local, always_xy=True)
        self._inv = Transformer.from_crs(local, "EPSG:4326", always_xy=True)

    def to_xy(self, lat: Any, lon: Any) -> tuple[Any, Any]:
        """Metres east (x) and north (y) of the centre."""
        return self._fwd.transform(lon, lat)

    def to_latlon(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Degrees latitude and longitude of a local point."""
        lon, lat = self._inv.transform(x, y)
        return lat, lon
