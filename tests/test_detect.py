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
    odd = torch.rand(1, 3, 30, 34)  # padded to the map's multiple, then cropped back
    with torch.no_grad():
        residual = net.forward_with_intermediates(y)["residual"]
        torch.testing.assert_close(first_pass_residual(net, y), residual)
        torch.testing.assert_close(
            first_pass_residual(net, odd), net.forward_with_intermediates(odd)["residual"]
        )
        # Only the first pass runs: one decoder call, no residual encoder.
        calls: list[str] = []
        for name in ("residual_encoder", "restoration.decoder"):
            net.get_submodule(name).register_forward_hook(lambda *_, n=name: calls.append(n))
        first_pass_residual(net, y)
        assert calls == ["restoration.decoder"]
        conv = torch.nn.Conv2d(3, 3, 1)
        torch.testing.assert_close(first_pass_residual(conv, y), y - conv(y))
    assert features(net, y, "residual_embedding").shape == (2, 4 * (1 + 2 + 4 + 8))
    with pytest.raises(RCOTError, match="two-pass"):
        features(torch.nn.Conv2d(3, 3, 1), y, "residual_embedding")


def test_detection_line_names_the_first_two_classes() -> None:
    found = Detection((("rain", 0.912), ("haze", 0.05), ("noise", 0.038)))
    assert found.name == "rain" and found.confidence == pytest.approx(0.912)
    assert found.line() == "rain (91 %; next: haze 5 %)"


def test_restore_names_the_degradation_when_the_bundled_model_ships_a_detector(
    compose_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import shutil

    import rcot_lightning.pretrained as pretrained
    from rcot_lightning.cli.restore import restore_files
    from rcot_lightning.pretrained import load_detector
    from rcot_lightning.visualize import save_png

    # A copy of denoise-blind whose .pt also holds a detector fitted on its own residuals of
    # noisy and blurred crops (what benchmarks/probe.py --bundle-into writes).
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(pretrained.WEIGHTS_DIR / "denoise-blind.yaml", weights / "probe-test.yaml")
    (weights / "probe-test.yaml").write_text(
        (weights / "probe-test.yaml").read_text().replace("denoise-blind.pt", "probe-test.pt")
    )
    stored = torch.load(pretrained.WEIGHTS_DIR / "denoise-blind.pt", weights_only=True)
    net = pretrained.load("denoise-blind")
    crops = _crops("astronaut", 16, 0)
    g = torch.Generator().manual_seed(0)
    noisy = GaussianNoise(sigma=[15, 40])(crops, g)
    blurred = GaussianBlur(sigma=[1.5, 3.0])(crops, g)
    x = features(net, torch.cat([noisy, blurred]).clamp(0, 1), "residual_spectrum")
    detector = DegradationDetector.fit(
        x, torch.tensor([0] * 16 + [1] * 16), ("noise", "blur"), "residual_spectrum", crop=64
    )
    stored["detector"] = detector.to_dict()
    torch.save(stored, weights / "probe-test.pt")
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", weights)
    assert load_detector("probe-test") is not None

    photo = load_photo("coffee")[None, :, :192, :192]  # a photo the detector never saw
    noisy_photo = GaussianNoise(sigma=30)(photo, torch.Generator().manual_seed(1))
    save_png(noisy_photo[0], tmp_path / "n.png")
    (path,) = restore_files(
        compose_config(
            "restore",
            "pretrained=probe-test",
            f"input={tmp_path / 'n.png'}",
            f"output={tmp_path / 'out'}",
        )
    )
    assert path.is_file()
    out = capsys.readouterr().out
    assert "n.png: looks like noise (" in out, out


def test_probe_benchmark_reports_every_feature_set_and_ships_its_detector(tmp_path: Path) -> None:
    import shutil

    from benchmarks.probe import CLASSES, main

    bundle = tmp_path / "map.pt"
    from rcot_lightning.pretrained import WEIGHTS_DIR

    shutil.copy(WEIGHTS_DIR / "sr-blind.pt", bundle)
    report = main(
        [
            *("--model", "denoise-blind", "--per-class", "3", "--test-per-class", "2"),
            *("--crop", "48", "--photos", "china", "--bundle-into", str(bundle)),
        ]
    )
    assert set(report["probes"]) == {"residual_spectrum", "residual_embedding", "input_spectrum"}
    for row in report["probes"].values():
        matrix = row["confusion"]
        assert len(matrix) == len(CLASSES) and all(sum(r) == 2 for r in matrix)
        assert 0.0 <= row["accuracy"] <= 1.0 and set(row["per_class"]) == set(CLASSES)
    whole = report["whole_photos"]
    # One photo at every held-out severity of six tasks: 3 + 3 + 3 + 3 + 4 + 3 inputs.
    assert len(whole["inputs"]) == 19 and set(whole["per_task"]) == {
        "denoise",
        "jpeg",
        "derain",
        "dehaze",
        "deblur",
        "lowlight",
    }
    stored = torch.load(bundle, weights_only=True)
    assert DegradationDetector.from_dict(stored["detector"]).classes == CLASSES
    assert "state_dict" in stored  # the map is kept
