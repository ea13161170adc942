"""A plain HTTP GET on a local port for tests: the status and body, error statuses included."""

from __future__ import annotations

import urllib.error
import urllib.request


def get(port: int, path: str) -> tuple[int, str]:
    """Status and body of ``GET http://127.0.0.1:{port}{path}`` (a 4xx or 5xx is returned, not raised)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
