"""The check that a library function a quirk fix replaces or wraps is still the code it was written against.

Used by ``streams/recovery_seek.py`` and ``streams/fetch_partitions.py``: each pins the sha256 of the
function's source as measured, and refuses to install over anything else.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any


def source_digest(fn: Callable[..., Any]) -> str:
    """sha256 of ``fn``'s source, as installed."""
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()


def require_measured(fn: Callable[..., Any], measured: str, fix: str, question: str) -> None:
    """Raise RuntimeError naming the ``fix`` module to re-check when ``fn`` is not the measured code."""
    if source_digest(fn) != measured:
        raise RuntimeError(
            f"faust's {fn.__qualname__} changed: {fix} must be checked against this faust-streaming version"
            f" ({question})"
        )
