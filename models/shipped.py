"""The reference checkpoints shipped in ``models/weights``, and their copies in a checkpoint folder.

Torch-free, so that the embedded stack can tell without importing torch whether its checkpoint
folder needs them. A folder records what it was given in ``shipped.json`` (file -> sha256); a copy
that still has the recorded checksum is an untouched copy of an earlier release and is refreshed
when the shipped file changes, while a file someone trained or replaced there is left alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "shipped.json"
BACKBONE_FILE = "base_clip.pt"
# Each group is copied whole: ST-CLIP refers to its frozen backbone by checksum.
GROUPS: tuple[tuple[str, ...], ...] = (("st_clip.pt", BACKBONE_FILE), ("sa_clip.pt",), ("scene_graph.pt",))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pending(directory: Path, shipped: Path = SHIPPED_DIR) -> list[tuple[str, ...]]:
    """The shipped groups ``directory`` should get: those it lacks, and untouched copies of older releases."""
    recorded = _manifest(directory)
    out = []
    for group in GROUPS:
        if not all((shipped / f).is_file() for f in group):
            continue
        if not (directory / group[0]).exists():
            out.append(group)
            continue
        untouched = all(recorded.get(f) == sha256(directory / f) for f in group if (directory / f).exists())
        if untouched and any(recorded.get(f) != sha256(shipped / f) for f in group):
            out.append(group)
    return out


def install(directory: str | Path, shipped: Path = SHIPPED_DIR) -> list[Path]:
    """Copy the pending shipped groups into ``directory`` and record them; return the files copied."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    recorded = _manifest(directory)
    copied = []
    for group in pending(directory, shipped):
        for f in group:
            shutil.copyfile(shipped / f, directory / f)
            recorded[f] = sha256(directory / f)
            copied.append(directory / f)
    if copied:
        (directory / MANIFEST).write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    return copied


def _manifest(directory: Path) -> dict[str, str]:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}
