"""The one owner of image-batch shape checks, padding and the declared size multiple."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from rcot_lightning.conf import MAP_PRESETS
from rcot_lightning.nets import Potential, RestormerUNet, TwoPassMap
from rcot_lightning.shapes import (
    check_images,
    check_same_shape,
    crop_to,
    pad_to_multiple,
    size_multiple,
)

TINY = MAP_PRESETS["tiny"]


def test_maps_declare_their_multiple_and_wrappers_are_looked_through() -> None:
    tmap = TwoPassMap(**TINY)
    assert size_multiple(tmap) == 8
    assert size_multiple(RestormerUNet(**TINY)) == 8
    assert size_multiple(AveragedModel(tmap)) == 8  # the EMA copy

    class Wrapper(nn.Module):  # DDP keeps the network as .module
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.module = inner

    assert size_multiple(Wrapper(Wrapper(tmap))) == 8
    assert size_multiple(nn.Conv2d(3, 3, 1)) == 1
    assert size_multiple(lambda t: t) == 1
    assert size_multiple(Potential(channels=(8, 8))) == 1  # size-agnostic, declares nothing


def test_maps_pad_to_their_declared_multiple() -> None:
    tmap = TwoPassMap(**TINY).eval()
    y = torch.rand(1, 3, 19, 30)
    padded, size = pad_to_multiple(y, tmap.size_multiple)
    assert padded.shape[-2:] == (24, 32)
    with torch.no_grad():
        torch.testing.assert_close(tmap(y), crop_to(tmap(padded), size), rtol=0, atol=0)


def test_check_images_names_the_argument() -> None:
    check_images(torch.zeros(1, 3, 4, 4), "y", channels=3)
    check_images(torch.zeros(1, 1, 4, 4), "r", channels=(1, 3))
    with pytest.raises(TypeError, match=r"y must be a torch\.Tensor, got list"):
        check_images([1], "y")
    with pytest.raises(ValueError, match=r"y must have shape \(B, 3, H, W\), got \(1, 4, 4, 4\)"):
        check_images(torch.zeros(1, 4, 4, 4), "y", channels=3)
    with pytest.raises(ValueError, match=r"r must have shape \(B, 1 or 3, H, W\)"):
        check_images(torch.zeros(1, 2, 4, 4), "r", channels=(1, 3))
    with pytest.raises(
        ValueError, match=r"clean must be a floating-point tensor, got torch\.uint8"
    ):
        check_images(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "clean", floating=True)


def test_check_same_shape() -> None:
    check_same_shape("a", torch.zeros(2, 3, 4, 4), "b", torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got a shape"):
        check_same_shape("a", torch.zeros(2, 3, 4, 4), "b", torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"b must have shape \(B, C, H, W\)"):
        check_same_shape("a", torch.zeros(2, 3, 4, 4), "b", torch.zeros(3, 4, 4))
