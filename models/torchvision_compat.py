"""Let ``import torchvision`` succeed when its C++ ops cannot load.

The registry's torchvision 0.28 is a CUDA build; beside a CPU torch its ``_C`` extension fails to
load, and ``torchvision/_meta_registrations.py`` then registers fake kernels for ``torchvision::nms``
and ``torchvision::qnms`` whose schemas do not exist, so the import dies. open_clip imports
torchvision, so every module that imports open_clip imports this module first.

Here the two schemas are defined (without kernels) only when torchvision's own extension cannot
provide them; where torchvision imports normally this module does nothing. fleetscope never calls
torchvision ops: images are decoded with Pillow (``models.preprocess``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _has_nms_schema() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - the lookup is the check
    except (AttributeError, RuntimeError):
        return False
    return True


def _native_ops_load() -> bool:
    """Load torchvision's ``_C`` the way torchvision does, without importing the package.

    It must be tried before defining anything: once this module owns the ``torchvision`` op
    namespace, a working ``_C`` would fail to register its own.
    """
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    finder = importlib.machinery.FileFinder(
        str(Path(spec.origin).parent),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )
    ext = finder.find_spec("_C")
    if ext is None or ext.origin is None:
        return False
    try:
        torch.ops.load_library(ext.origin)
    except OSError:
        return False
    return True


def _install() -> torch.library.Library | None:
    if _has_nms_schema() or _native_ops_load():
        return None
    lib = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        lib.define(schema)
    return lib


# Kept referenced: the definitions are dropped when the Library object is garbage-collected.
_LIBRARY = _install()
