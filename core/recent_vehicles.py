"""State kept per vehicle for the most recently seen vehicles only, so memory stays bounded."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

State = TypeVar("State")


class RecentVehicles(Generic[State]):
    """Each vehicle's state, made by ``new`` on first sight; past ``limit`` vehicles, the least recently seen goes."""

    def __init__(self, new: Callable[[], State], limit: int) -> None:
        self.new, self.limit = new, limit
        self._states: OrderedDict[str, State] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, vehicle_id: str) -> State | None:
        """The vehicle's state if it is held, without counting this as a sighting."""
        return self._states.get(vehicle_id)

    def seen(self, vehicle_id: str) -> State:
        """The vehicle's state, now counted as the most recently seen."""
        state = self._states.pop(vehicle_id, None)
        if state is None:
            state = self.new()
        self._states[vehicle_id] = state
        while len(self._states) > self.limit:
            self._states.popitem(last=False)
        return state
