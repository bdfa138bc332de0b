"""Dead-leaves images are deterministic, photo-like in range and spectrum, and fail clearly."""

from __future__ import annotations

import pytest
import torch

from rcot_lightning.data.dead_leaves import DeadLeavesImages, dead_leaves
from rcot_lightning.errors import RCOTError


def test_same_seed_same_image_other_seed_other_image() -> None:
    a, b = dead_leaves((24, 40), seed=3), dead_leaves((24, 40), seed=3)
    assert a.shape == (3, 24, 40) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, dead_leaves((24, 40), seed=4))
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_spectrum_falls_like_a_photo() -> None:
    # Occlusion edges at every scale give natural images' power-law spectrum: much more energy
    # at low than at high frequencies, unlike white noise (flat).
    image = dead_leaves(64, seed=0).mean(0)
    power = torch.fft.fft2(image - image.mean()).abs().pow(2)
    freq = torch.fft.fftfreq(64).abs()
    radius = torch.maximum(freq[:, None], freq[None, :])
    low = power[(radius > 0) & (radius < 0.1)].mean()
    high = power[radius > 0.4].mean()
    assert low > 20 * high


def test_images_have_edges_and_flat_regions() -> None:
    image = dead_leaves(64, seed=1)
    step = (image[:, :, 1:] - image[:, :, :-1]).abs().amax(0)
    assert float((step < 1e-3).float().mean()) > 0.2  # flat leaves
    assert float(step.max()) > 0.1  # occlusion edges


def test_image_list_is_lazy_named_and_deterministic() -> None:
    images = DeadLeavesImages(count=3, size=20, seed=5)
    assert len(images) == 3 and images.names[2] == "dead_leaves_5_2"
    assert images.size(0) == (20, 20)
    assert torch.equal(images.load(1), DeadLeavesImages(3, 20, seed=5).load(1))
    assert not torch.equal(images.load(0), images.load(1))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dead_leaves(0, seed=0), "positive size"),
        (lambda: dead_leaves(8, seed=0, radius_min=5, radius_max=2), "radius_min"),
        (lambda: DeadLeavesImages(count=0, size=8), "count"),
    ],
)
def test_bad_arguments_raise_one_clear_error(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RCOTError, match=match):
        call()
