"""The degradation detector (issue 31, item 5): a linear classifier on residual features that
names the degradation of an image, shipped inside a bundled model and printed by rcot-restore."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rcot_lightning.data.degradations import GaussianBlur, GaussianNoise
from rcot_lightning.data.samples import load_photo
from rcot_lightning.detect import (
    DegradationDetector,
    Detection,
    crop_grid,
    features,
    first_pass_residual,
)
from rcot_lightning.errors import RCOTError
from rcot_lightning.nets import TwoPassMap


def _crops(name: str, count: int, seed: int) -> torch.Tensor:
    photo = load_photo(name)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        top = int(torch.randint(photo.shape[1] - 64, (1,), generator=g))
        left = int(torch.randint(photo.shape[2] - 64, (1,), generator=g))
        out.append(photo[:, top : top + 64, left : left + 64])
    return torch.stack(out)


def test_spectrum_features_tell_noise_from_blur_on_a_photo_the_detector_never_saw() -> None:
    # Fitted on crops of one photo, scored on crops of another: noise adds energy at high
    # frequencies, blur removes it; the log spectrum's cells separate the two.
    noise, blur = GaussianNoise(sigma=[10, 30]), GaussianBlur(sigma=[1.5, 3.0])

    def labelled(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        crops = _crops(name, 24, seed)
        x = torch.cat([noise(crops, g), blur(crops, g)]).clamp(0, 1)
        return features(None, x, "input_spectrum"), torch.tensor([0] * 24 + [1] * 24)

    train_x, train_y = labelled("astronaut", 0)
    test_x, test_y = labelled("coffee", 1)
    assert train_x.shape == (48, 70)  # 8 x 8 spectrum cells, 3 means, 3 log stds
    detector = DegradationDetector.fit(train_x, train_y, ("noise", "blur"), "input_spectrum")
    predicted = detector.probabilities(test_x).argmax(1)
    assert float((predicted == test_y).float().mean()) >= 0.95


def test_detector_round_trips_through_a_weights_only_file(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    detector = DegradationDetector.fit(x, y, ("a", "b", "c"), "residual_spectrum", crop=64)
    torch.save({"detector": detector.to_dict()}, tmp_path / "d.pt")
    stored = torch.load(tmp_path / "d.pt", weights_only=True)["detector"]
    again = DegradationDetector.from_dict(stored)
    assert again.classes == ("a", "b", "c") and again.crop == 64 and again.crops == 9
    torch.testing.assert_close(again.probabilities(x), detector.probabilities(x))
    stored["bias"] = torch.zeros(4)
    with pytest.raises(RCOTError, match="model=x: a degradation detector with inconsistent"):
        DegradationDetector.from_dict(stored, "model=x")
    with pytest.raises(RCOTError, match="not a degradation detector"):
        DegradationDetector.from_dict({"classes": ["a"]}, "model=x")
    with pytest.raises(RCOTError, match="unknown features 'pixels'"):
        DegradationDetector.fit(x, y, ("a", "b", "c"), "pixels")


def test_crop_grid_reads_an_even_grid_or_the_whole_small_image() -> None:
    image = torch.arange(300.0 * 400).reshape(1, 1, 300, 400).expand(1, 3, -1, -1)
    crops = crop_grid(image, 96, 9)
    assert crops.shape == (9, 3, 96, 96)
    assert float(crops[0, 0, 0, 0]) == 0.0  # the top-left corner
    assert float(crops[-1, 0, -1, -1]) == float(image[0, 0, -1, -1])  # the bottom-right one
    assert crop_grid(image, 96, 4).shape[0] == 4
    small = image[..., :50, :60]
    assert crop_grid(small, 96, 9).shape == (1, 3, 50, 60)


def test_residual_features_come_from_the_first_pass_of_a_two_pass_map() -> None:
    net = TwoPassMap(
        dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=0, heads=(1, 1, 1, 1)
    ).eval()
    y = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        residual = net.forward_with_intermediates(y)["residual"]
        torch.testing.assert_close(first_pass_residual(net, y), residual)
        conv = torch.nn.Conv2d(3, 3, 1)
        torch.testing.assert_close(first_pass_residual(conv, y), y - conv(y))
    assert features(net, y, "residual_embedding").shape == (2, 4 * (1 + 2 + 4 + 8))
    with pytest.raises(RCOTError, match="two-pass"):
        features(torch.nn.Conv2d(3, 3, 1), y, "residual_embedding")


def test_detection_line_names_the_first_two_classes() -> None:
    found = Detection((("rain", 0.912), ("haze", 0.05), ("noise", 0.038)))
    assert found.name == "rain" and found.confidence == pytest.approx(0.912)
    assert found.line() == "rain (91 %; next: haze 5 %)"
