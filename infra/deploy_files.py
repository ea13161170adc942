"""The files under deploy/ that are generated from the code, written or checked in one place.

``fleetscope deploy render`` rewrites them after a change to the topics or the dashboards;
``--check`` (what the tests do) reports any that differ from what the code generates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.settings import REPO_ROOT
from infra import dashboards, manifests

KAFKA_TOPICS = REPO_ROOT / "deploy" / "kubernetes" / "base" / "kafka-topics.yaml"


def generated() -> dict[Path, Callable[[], str]]:
    """Every generated file and what makes its content."""
    files: dict[Path, Callable[[], str]] = {
        KAFKA_TOPICS: lambda: manifests.kafka_topics_yaml(manifests.production_settings(), manifests.STRIMZI_CLUSTER)
    }
    for name, board in dashboards.dashboards().items():
        files[dashboards.DASHBOARDS_DIR / name] = lambda board=board: dashboards.render(board)  # type: ignore[misc]
    return files


def stale() -> list[Path]:
    """Generated files whose committed content differs from what the code makes now."""
    return [p for p, make in generated().items() if not p.exists() or p.read_text() != make()]


def render() -> list[Path]:
    """Rewrite the generated files that are stale; return them."""
    changed = stale()
    makers = generated()
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(makers[path]())
    return changed
