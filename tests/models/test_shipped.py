"""Installing the shipped checkpoints into a checkpoint folder, and refreshing them on a new release."""

from __future__ import annotations

from pathlib import Path

from models.shipped import install, pending


def release(folder: Path, version: str) -> Path:
    """A stand-in for models/weights: every shipped file, with contents naming the release."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("base_clip.pt", "st_clip.pt", "sa_clip.pt", "scene_graph.pt"):
        (folder / name).write_text(f"{name} {version}")
    return folder


def test_an_empty_folder_gets_every_shipped_file_and_then_needs_nothing(tmp_path):
    shipped, ckpt = release(tmp_path / "v1", "v1"), tmp_path / "ckpt"

    copied = install(ckpt, shipped)

    assert sorted(p.name for p in copied) == ["base_clip.pt", "sa_clip.pt", "scene_graph.pt", "st_clip.pt"]
    assert pending(ckpt, shipped) == [] and install(ckpt, shipped) == []


def test_untouched_copies_are_refreshed_by_a_new_release_and_files_of_ones_own_are_kept(tmp_path):
    ckpt = tmp_path / "ckpt"
    install(ckpt, release(tmp_path / "v1", "v1"))
    (ckpt / "sa_clip.pt").write_text("my own fine-tune")

    copied = install(ckpt, release(tmp_path / "v2", "v2"))

    assert sorted(p.name for p in copied) == ["base_clip.pt", "scene_graph.pt", "st_clip.pt"]
    assert (ckpt / "st_clip.pt").read_text() == "st_clip.pt v2"
    assert (ckpt / "sa_clip.pt").read_text() == "my own fine-tune"


def test_st_clip_and_its_backbone_are_refreshed_together_or_not_at_all(tmp_path):
    ckpt = tmp_path / "ckpt"
    install(ckpt, release(tmp_path / "v1", "v1"))
    (ckpt / "base_clip.pt").write_text("my own base CLIP")  # the shipped ST-CLIP no longer matches it

    install(ckpt, release(tmp_path / "v2", "v2"))

    assert (ckpt / "st_clip.pt").read_text() == "st_clip.pt v1"
    assert (ckpt / "base_clip.pt").read_text() == "my own base CLIP"
