"""PSNR/SSIM against scikit-image, field conventions, input validation, FID/KID offline."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from rcot_lightning.metrics import (
    MetricAvailability,
    PooledFeatures,
    RandomFeatureDistances,
    RandomFeatures,
    feature_fid,
    feature_kid,
    image_patches,
    inception_fid,
    inception_fid_available,
    lpips,
    lpips_available,
    pretrained_probes,
    psnr,
    rgb_to_y,
    score_images,
    ssim,
)


def _pair(seed: int = 0, shape: tuple[int, ...] = (3, 3, 24, 31)) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g)
    pred = (target + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    return pred, target


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy()


def _sk_ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    return structural_similarity(
        _hwc(a),
        _hwc(b),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=2,
    )


def test_psnr_matches_skimage_per_image() -> None:
    pred, target = _pair()
    ours = psnr(pred, target)
    assert ours.shape == (3,) and ours.dtype == torch.float64
    for i in range(3):
        ref = peak_signal_noise_ratio(_hwc(target[i]), _hwc(pred[i]), data_range=1.0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-6)


def test_psnr_data_range_255_equals_unit_range() -> None:
    pred, target = _pair(1)
    a = psnr(pred, target)
    b = psnr(pred * 255, target * 255, data_range=255.0)
    torch.testing.assert_close(a, b)


def test_ssim_matches_skimage_per_image() -> None:
    pred, target = _pair(2)
    ours = ssim(pred, target)
    assert ours.shape == (3,)
    for i in range(3):
        assert ours[i].item() == pytest.approx(_sk_ssim(pred[i], target[i]), abs=1e-4)


def test_ssim_data_range_255_matches_skimage() -> None:
    pred, target = _pair(3, (1, 3, 20, 20))
    ours = ssim(pred * 255, target * 255, data_range=255.0)
    ref = _sk_ssim(pred[0] * 255, target[0] * 255, data_range=255.0)
    assert ours.item() == pytest.approx(ref, abs=1e-4)


def test_y_channel_and_crop_border_match_skimage_on_luma() -> None:
    pred, target = _pair(4, (2, 3, 30, 28))
    yp, yt = rgb_to_y(pred)[:, :, 4:-4, 4:-4], rgb_to_y(target)[:, :, 4:-4, 4:-4]
    p = psnr(pred, target, crop_border=4, y_channel=True)
    s = ssim(pred, target, crop_border=4, y_channel=True)
    for i in range(2):
        ref_p = peak_signal_noise_ratio(
            yt[i, 0].double().numpy(), yp[i, 0].double().numpy(), data_range=1.0
        )
        ref_s = structural_similarity(
            yp[i, 0].double().numpy(),
            yt[i, 0].double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        assert p[i].item() == pytest.approx(ref_p, abs=1e-5)
        assert s[i].item() == pytest.approx(ref_s, abs=1e-4)


def test_rgb_to_y_bt601_studio_range() -> None:
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert rgb_to_y(x).item() == pytest.approx((16 + 65.481) / 255)
    assert rgb_to_y(torch.rand(2, 3, 4, 5)).shape == (2, 1, 4, 5)
    with pytest.raises(ValueError, match="x must have shape"):
        rgb_to_y(torch.rand(2, 1, 4, 5))


def test_identical_images_give_finite_capped_psnr_and_unit_ssim() -> None:
    x = torch.rand(2, 3, 16, 16)
    p = psnr(x, x)
    assert torch.isfinite(p).all()
    assert p.tolist() == pytest.approx([100.0, 100.0])
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])


def test_per_image_not_pooled() -> None:
    clean = torch.zeros(2, 3, 16, 16)
    pred = clean.clone()
    pred[0] += 0.1
    pred[1] += 0.01
    assert psnr(pred, clean).tolist() == pytest.approx([20.0, 40.0])


def test_score_images_is_psnr_and_ssim_with_the_conventions() -> None:
    restored, target = _pair(6, (2, 3, 30, 28))
    degraded = target + 0.3 * torch.randn(target.shape, generator=torch.Generator().manual_seed(7))
    scores = score_images(restored, target, degraded=degraded, crop_border=2, also_y=True)
    assert list(scores) == ["psnr", "ssim", "psnr_input", "ssim_input", "psnr_y", "ssim_y"]
    rgb = {"crop_border": 2, "y_channel": False}
    luma = {"crop_border": 2, "y_channel": True}
    clamped = degraded.clamp(0, 1)  # the input is scored as it would be saved
    expected = {
        "psnr": psnr(restored, target, **rgb),
        "ssim": ssim(restored, target, **rgb),
        "psnr_input": psnr(clamped, target, **rgb),
        "ssim_input": ssim(clamped, target, **rgb),
        "psnr_y": psnr(restored, target, **luma),
        "ssim_y": ssim(restored, target, **luma),
    }
    for name, value in expected.items():
        assert torch.equal(scores[name], value), name
    # Y-channel scores are the main ones already: no duplicate *_y; no input: no *_input.
    on_y = score_images(restored, target, y_channel=True, crop_border=2, also_y=True)
    assert list(on_y) == ["psnr", "ssim"]
    assert torch.equal(on_y["psnr"], expected["psnr_y"])


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_validation_errors(fn) -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="target shape"):
        fn(x, torch.rand(1, 3, 16, 15))
    with pytest.raises(ValueError, match="pred must have shape"):
        fn(x[0], x[0])
    with pytest.raises(ValueError, match="crop_border"):
        fn(x, x, crop_border=8)
    with pytest.raises(ValueError, match="crop_border"):
        fn(x, x, crop_border=-1)
    with pytest.raises(ValueError, match="data_range"):
        fn(x, x, data_range=0)
    with pytest.raises(ValueError, match="y_channel"):
        fn(x[:, :1], x[:, :1], y_channel=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    pred, target = _pair(5, (2, 3, 32, 40))
    for fn in (psnr, ssim):
        for y_channel in (False, True):
            cpu = fn(pred, target, crop_border=2, y_channel=y_channel)
            gpu = fn(pred.cuda(), target.cuda(), crop_border=2, y_channel=y_channel)
            assert gpu.device.type == "cuda"
            torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-8, rtol=0)
    fid = feature_fid(_tiny_net().cuda())
    fid.update(pred.cuda(), real=True)
    fid.update(target.cuda(), real=False)
    assert torch.isfinite(fid.compute())


def test_ssim_needs_window_sized_images() -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="crop_border=3"):
        ssim(x, x, crop_border=3)  # 10 px left < 11-px window


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 6, 3))


def test_pooled_features_frozen_eval_and_sized() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    f = PooledFeatures(net)
    assert f.num_features == 4
    parent = nn.Sequential(f)
    parent.train()
    assert not f.training and not net.training
    x = torch.rand(3, 3, 16, 16, requires_grad=True)
    out = f(x)
    assert out.shape == (3, 4) and not out.requires_grad
    torch.testing.assert_close(out, f(x))


def test_feature_fid_offline_with_tiny_net() -> None:
    torch.manual_seed(0)
    real = torch.rand(6, 3, 24, 24)
    fid = feature_fid(_tiny_net())
    fid.update(real, real=True)
    fid.update(real, real=False)
    same = fid.compute().item()
    fid.reset()
    fid.update(real, real=True)
    fid.update((real * 0.3 + 0.6).clamp(0, 1), real=False)
    shifted = fid.compute().item()
    assert abs(same) < 1e-3
    assert shifted > same + 1e-3


def test_feature_fid_needs_two_images() -> None:
    fid = feature_fid(_tiny_net(), num_features=6)
    fid.update(torch.rand(1, 3, 16, 16), real=True)
    fid.update(torch.rand(1, 3, 16, 16), real=False)
    with pytest.raises(RuntimeError, match="More than one sample"):
        fid.compute()


def test_feature_kid_offline_with_tiny_net() -> None:
    torch.manual_seed(0)
    real = torch.rand(6, 3, 24, 24)
    kid = feature_kid(_tiny_net(), subsets=3, subset_size=4)
    kid.update(real, real=True)
    kid.update((real * 0.3 + 0.6).clamp(0, 1), real=False)
    mean, std = kid.compute()
    assert torch.isfinite(mean) and torch.isfinite(std)
    assert mean.item() > 0


def test_availability_object_is_truthy_only_when_available() -> None:
    assert not MetricAvailability(False, "x")
    assert MetricAvailability(True, "y")


def test_optional_metrics_skip_with_logged_reason(monkeypatch, tmp_path, caplog) -> None:
    # An empty hub directory: whatever is installed, the weights are absent, so both skip.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    fid_status, lpips_status = inception_fid_available(), lpips_available()
    assert not fid_status and not lpips_status
    assert "torch-fidelity" in fid_status.reason or "weights" in fid_status.reason
    assert "torchvision" in lpips_status.reason or "weights" in lpips_status.reason
    with caplog.at_level(logging.WARNING, logger=pretrained_probes.__name__):
        assert inception_fid() is None
        assert lpips() is None
    assert "Skipping Inception FID" in caplog.text
    assert "Skipping LPIPS" in caplog.text


def test_inception_fid_reason_names_missing_weights(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(pretrained_probes.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    status = inception_fid_available()
    assert not status
    assert str(tmp_path) in status.reason


def test_image_patches_cover_each_image_at_the_stride() -> None:
    image = torch.arange(3 * 96 * 128, dtype=torch.float32).view(3, 96, 128)
    out = image_patches([image, image[:1].expand(3, -1, -1)[:, :32]])  # the second is too small
    assert out.shape == (2 * 3, 3, 64, 64)
    torch.testing.assert_close(out[4], image[:, 32:96, 32:96])  # row 1, column 1
    assert image_patches(image[None, :1]).shape == (6, 1, 64, 64)  # a batch, one channel


def test_random_features_are_fixed_by_the_seed() -> None:
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(RandomFeatures(0)(x), RandomFeatures(0)(x))
    assert not torch.allclose(RandomFeatures(0)(x), RandomFeatures(1)(x))
    assert not list(RandomFeatures().parameters())  # fixed: buffers, nothing to train
    state = torch.get_rng_state()
    RandomFeatures(2)
    assert torch.equal(torch.get_rng_state(), state)  # drawn from its own generator only


def test_random_feature_distances_equal_the_metrics_on_the_patches() -> None:
    # The features are computed once for FID and KID: the same values as each metric fed with
    # the patches through the random network itself.
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 96, 96, generator=g)
    restored = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    distances = RandomFeatureDistances(subsets=3)
    distances.update(restored[:2], target[:2])
    distances.update(restored[2:], target[2:])
    assert distances.count == 12
    state = torch.get_rng_state()
    scores = distances.compute()
    assert distances.compute() == scores  # KID's subsets are seeded ...
    assert torch.equal(torch.get_rng_state(), state)  # ... by their own generator
    fid = feature_fid(RandomFeatures(0), num_features=256)
    kid = feature_kid(RandomFeatures(0), num_features=256, subsets=3, subset_size=12)
    for metric in (fid, kid):
        metric.update(image_patches(target), real=True)
        metric.update(image_patches(restored), real=False)
    torch.manual_seed(0)
    assert scores["kid"] == pytest.approx(float(kid.compute()[0]), rel=1e-6)
    assert scores["fid"] == pytest.approx(float(fid.compute()), rel=1e-6)
    assert scores["fid"] > 0
    distances.reset()
    assert distances.count == 0
    grey = target[:, :1]
    distances.update(grey, grey)  # one channel is compared as RGB
    assert abs(distances.compute()["fid"]) < 1e-3


def test_random_feature_distances_need_two_patches() -> None:
    distances = RandomFeatureDistances()
    distances.update(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="at least 2 patches of 64x64 per side, got 1"):
        distances.compute()
    with pytest.raises(ValueError, match="target shape"):
        distances.update(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 65))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_random_feature_distances_run_on_the_images_device() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 96, 96, generator=g)
    restored = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    cpu, gpu = RandomFeatureDistances(), RandomFeatureDistances()
    cpu.update(restored, target)
    gpu.update(restored.cuda(), target.cuda())
    assert gpu.fid.real_features_sum.device.type == "cuda"
    expected, scores = cpu.compute(), gpu.compute()
    # cuDNN may convolve in TF32: close, not equal.
    assert scores["fid"] == pytest.approx(expected["fid"], rel=0.05, abs=1e-3)
    assert scores["kid"] == pytest.approx(expected["kid"], rel=0.05, abs=1e-4)
