"""Statistics, determinism and parameter validation of the degradations."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rcot_lightning.contract import DegradationId
from rcot_lightning.data.degradations import (
    DEGRADATIONS,
    JPEG,
    Chain,
    Degradation,
    Downscale,
    GaussianBlur,
    GaussianNoise,
    Haze,
    LowLight,
    MotionBlur,
    OneOf,
    RainStreaks,
    build_degradation,
)
from rcot_lightning.errors import ArgumentError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_image(b: int = 2, size: int = 64) -> torch.Tensor:
    """A textured image with both smooth and high-frequency content, in [0.2, 0.8]."""
    g = _gen(123)
    y = torch.linspace(0, 1, size).view(1, 1, size, 1)
    x = torch.linspace(0, 1, size).view(1, 1, 1, size)
    base = (
        0.5
        + 0.15 * torch.sin(12 * x + 3 * y)
        + 0.1 * (torch.rand(b, 3, size, size, generator=g) - 0.5)
    )
    return base.expand(b, 3, size, size).clamp(0.2, 0.8).contiguous()


def _high_frequency_energy(img: torch.Tensor) -> float:
    spectrum = torch.fft.fftshift(torch.fft.fft2(img - img.mean()), dim=(-2, -1)).abs() ** 2
    h, w = img.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    high = (yy**2 + xx**2) > (min(h, w) // 4) ** 2
    return float(spectrum[..., high].sum())


ALL = [
    GaussianNoise(sigma=25),
    GaussianNoise(sigma=(5, 50)),
    RainStreaks(),
    Haze(),
    GaussianBlur(sigma=(0.5, 2.0)),
    MotionBlur(kernel_size=9),
    Downscale(scale=2),
    Downscale(scale=3),
    JPEG(quality=(10, 50)),
    JPEG(quality=(10, 90), codec="libjpeg", quality_power=2),
    LowLight(),
    OneOf([GaussianNoise(sigma=15), Haze(), JPEG()]),
    Chain([GaussianBlur(sigma=1.0), Downscale(scale=2), GaussianNoise(sigma=5)]),
]


@pytest.mark.parametrize("degradation", ALL, ids=repr)
def test_same_seed_same_output_and_shape_and_range(degradation: Degradation) -> None:
    clean = _smooth_image()
    a, ids_a = degradation.apply(clean, _gen(7))
    b, ids_b = degradation.apply(clean, _gen(7))
    c = degradation(clean, _gen(8))
    assert torch.equal(a, b) and torch.equal(ids_a, ids_b)
    assert a.shape == clean.shape and a.dtype == clean.dtype
    assert ids_a.shape == (2,) and ids_a.dtype == torch.long
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    if not isinstance(degradation, Downscale):  # the only one without randomness
        assert not torch.equal(a, c)


@pytest.mark.parametrize("sigma", [15.0, 25.0, 50.0])
def test_noise_std_within_two_percent_of_sigma(sigma: float) -> None:
    clean = torch.full((1, 3, 256, 256), 0.5)
    noisy = GaussianNoise(sigma=sigma, clip=False, quantize=False)(clean, _gen(0))
    std = float((noisy - clean).std() * 255)
    assert abs(std - sigma) / sigma < 0.02
    assert abs(float((noisy - clean).mean() * 255)) < 0.2


def test_noise_reference_setting_clips_and_quantises_to_8_bits() -> None:
    clean = torch.full((1, 3, 256, 256), 0.5)
    noisy = GaussianNoise(sigma=25)(clean, _gen(0))
    levels = noisy * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert abs(float((noisy - clean).std() * 255) - 25) / 25 < 0.02  # 5 sigma from the rails


def test_blind_noise_draws_one_sigma_per_image_within_range() -> None:
    clean = torch.full((8, 3, 64, 64), 0.5)
    noisy = GaussianNoise(sigma=(10, 40), clip=False, quantize=False)(clean, _gen(0))
    stds = ((noisy - clean).flatten(1).std(dim=1) * 255).tolist()
    assert all(9 < s < 41 for s in stds)
    assert max(stds) - min(stds) > 5


def test_noise_with_none_generator_uses_global_rng() -> None:
    torch.manual_seed(0)
    a = GaussianNoise(sigma=25)(torch.full((1, 3, 8, 8), 0.5))
    torch.manual_seed(0)
    b = GaussianNoise(sigma=25)(torch.full((1, 3, 8, 8), 0.5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("blur", [GaussianBlur(sigma=1.5), MotionBlur(kernel_size=11)], ids=repr)
def test_blur_lowers_high_frequency_energy(blur: Degradation) -> None:
    clean = torch.rand(2, 3, 64, 64, generator=_gen(1))
    blurred = blur(clean, _gen(0))
    assert _high_frequency_energy(blurred) < 0.3 * _high_frequency_energy(clean)
    assert abs(float(blurred.mean() - clean.mean())) < 0.01  # blur preserves the mean


def test_motion_blur_smears_along_its_angle() -> None:
    point = torch.zeros(1, 3, 31, 31)
    point[..., 15, 15] = 1.0
    horizontal = MotionBlur(kernel_size=9, angle=0.0)(point)
    rows = horizontal[0, 0].sum(dim=1).nonzero().flatten().tolist()
    cols = horizontal[0, 0].sum(dim=0).nonzero().flatten().tolist()
    assert rows == [15] and len(cols) == 9


def test_haze_lowers_contrast_and_pulls_towards_airlight() -> None:
    clean = torch.rand(4, 3, 64, 64, generator=_gen(2))
    hazy = Haze(beta=1.5, airlight=0.9)(clean, _gen(0))
    assert float(hazy.std()) < 0.8 * float(clean.std())
    assert float(hazy.mean()) > float(clean.mean())  # brighter: towards A = 0.9 from 0.5


def test_haze_transmission_is_smooth_and_bounded() -> None:
    haze = Haze(beta=1.0)
    t = haze.transmission((2, 3, 64, 64), _gen(0), torch.zeros(1))
    assert t.shape == (2, 1, 64, 64)
    assert float(t.min()) >= float(torch.exp(torch.tensor(-1.0))) - 1e-5 and float(t.max()) <= 1
    # Smooth: neighbouring pixels differ far less than the map's range.
    assert float((t[..., 1:, :] - t[..., :-1, :]).abs().max()) < 0.1 * float(t.max() - t.min())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_sizes(scale: int) -> None:
    clean = torch.rand(2, 3, 48, 64, generator=_gen(0))
    small = Downscale(scale=scale, upsample=False)(clean)
    assert small.shape == (2, 3, 48 // scale, 64 // scale)
    back = Downscale(scale=scale)(clean)
    assert back.shape == clean.shape
    assert _high_frequency_energy(back) < _high_frequency_energy(clean)


def test_downscale_of_a_constant_is_constant() -> None:
    clean = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(Downscale(scale=4)(clean), clean, atol=1e-5)


def test_jpeg_quality_orders_error_and_output_is_8_bit() -> None:
    clean = _smooth_image(1, 64)
    errors = [float((JPEG(quality=q)(clean) - clean).abs().mean()) for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2]
    out = JPEG(quality=30)(clean)
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)


def test_jpeg_takes_any_image_size() -> None:
    # kornia < 0.8 takes sides that are multiples of 16 only; the degradation pads for it.
    clean = _smooth_image(1, 64)[..., :41, :30]
    out = JPEG(quality=30)(clean)
    assert out.shape == clean.shape and float((out - clean).abs().mean()) < 0.05


def test_libjpeg_is_a_saved_file_and_harsher_than_kornia_at_the_same_quality() -> None:
    from PIL import Image

    clean = _smooth_image(1, 64)
    real = JPEG(quality=20, codec="libjpeg")(clean)
    pixels = (clean[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=20, subsampling=2)
    decoded = torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy())
    assert torch.equal((real[0].permute(1, 2, 0) * 255).round().to(torch.uint8), decoded)
    soft = JPEG(quality=20)(clean)
    assert float((real - clean).square().mean()) > float((soft - clean).square().mean())


def test_jpeg_quality_power_draws_low_qualities_more_often() -> None:
    from rcot_lightning.data.degradations import _sample

    clean = torch.zeros(4000, 3, 1, 1)
    jpeg, skew = JPEG(quality=(10, 90)), JPEG(quality=(10, 90), quality_power=2)
    uniform = _sample(jpeg.quality, 4000, _gen(0), clean, jpeg.quality_power)
    skewed = _sample(skew.quality, 4000, _gen(0), clean, skew.quality_power)
    assert float(skewed.min()) >= 10 and float(skewed.max()) <= 90
    assert abs(float(uniform.median()) - 50) < 3 and abs(float(skewed.median()) - 30) < 3
    assert "codec='libjpeg', quality_power=2" in repr(JPEG(codec="libjpeg", quality_power=2))


def test_rain_adds_slanted_bright_streaks() -> None:
    clean = torch.full((2, 3, 64, 64), 0.3)
    rainy = RainStreaks(density=0.01, length=15, angle=0.0, opacity=0.8)(clean, _gen(0))
    diff = (rainy - clean)[:, 0]
    assert float(diff.min()) >= 0 and float(diff.mean()) > 0.01
    # Vertical streaks: the rain layer correlates far more along columns than along rows.
    vertical = float((diff[:, 1:, :] * diff[:, :-1, :]).mean())
    horizontal = float((diff[:, :, 1:] * diff[:, :, :-1]).mean())
    assert vertical > 3 * horizontal


def test_lowlight_darkens_and_keeps_order() -> None:
    clean = _smooth_image()
    dark = LowLight(gamma=2.0, gain=0.4, sigma=0.0, quantize=False)(clean, _gen(0))
    assert float(dark.mean()) < 0.5 * float(clean.mean())
    expected = 0.4 * clean**2.0
    assert torch.allclose(dark, expected, atol=1e-5)


def test_one_of_tags_each_row_with_the_degradation_it_got() -> None:
    clean = torch.full((64, 3, 16, 16), 0.5)
    mix = OneOf([GaussianNoise(sigma=50, clip=False, quantize=False), Haze(beta=2.0, airlight=1.0)])
    degraded, ids = mix.apply(clean, _gen(0))
    noise_rows = ids == DegradationId.NOISE
    haze_rows = ids == DegradationId.HAZE
    assert bool((noise_rows | haze_rows).all()) and 10 < int(noise_rows.sum()) < 54
    # Noise rows are noisy around 0.5; haze rows are smooth and brighter.
    assert float(degraded[noise_rows].std(dim=(1, 2, 3)).min()) > 0.1
    assert float(degraded[haze_rows].mean(dim=(1, 2, 3)).min()) > 0.5
    assert mix(clean, _gen(0)).shape == clean.shape


def test_one_of_weights_select_rows() -> None:
    mix = OneOf([GaussianNoise(sigma=10), JPEG()], weights=[0.0, 1.0])
    _, ids = mix.apply(torch.rand(8, 3, 16, 16), _gen(0))
    assert ids.tolist() == [int(DegradationId.JPEG)] * 8


def test_chain_id_is_common_id_or_explicit() -> None:
    same = Chain([GaussianBlur(sigma=1.0), MotionBlur(kernel_size=5)])
    assert same.degradation_id == DegradationId.BLUR
    sr = Chain([GaussianBlur(sigma=1.0), Downscale(scale=2)], degradation_id="sr")
    _, ids = sr.apply(torch.rand(3, 3, 16, 16))
    assert ids.tolist() == [int(DegradationId.SR)] * 3


def test_the_registry_is_the_classes_by_their_short_names() -> None:
    """DEGRADATIONS is derived from the classes (no second table), and a name builds its class."""
    classes = [GaussianNoise, RainStreaks, Haze, GaussianBlur, MotionBlur, Downscale, JPEG]
    classes += [LowLight, OneOf, Chain]
    assert {cls.short_name: cls for cls in classes} == DEGRADATIONS
    for name, cls in DEGRADATIONS.items():
        kwargs = {"degradations": [GaussianNoise(sigma=5)]} if name in ("one_of", "chain") else {}
        assert isinstance(build_degradation(name, **kwargs), cls)

    class Speckle(GaussianNoise):
        short_name = "speckle_test"

    try:
        assert DEGRADATIONS["speckle_test"] is Speckle
        assert isinstance(build_degradation("speckle_test", sigma=3), Speckle)
    finally:
        del DEGRADATIONS["speckle_test"]


def test_compositions_take_built_degradations_only() -> None:
    """Configs build every stage from its `_target_`; a {name: ...} mapping is not a second way."""
    with pytest.raises(ArgumentError, match=r"degradations entries must be degradations: in a c"):
        OneOf([{"name": "noise"}])  # type: ignore[list-item]
    with pytest.raises(ArgumentError, match=r"`_target_` such as rcot_lightning\.data\.degrad"):
        Chain([GaussianNoise(), {"name": "haze"}])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: GaussianNoise(sigma=-5), "sigma must be >= 0, got -5"),
        (lambda: GaussianNoise(sigma=(30, 10)), "sigma must be [low, high]"),
        (lambda: GaussianNoise(sigma="high"), "sigma must be a number"),
        (lambda: Downscale(scale=0), "scale must be an integer >= 2"),
        (lambda: Downscale(scale=2.5), "scale"),  # type: ignore[arg-type]
        (lambda: GaussianBlur(sigma=0), "sigma must be > 0"),
        (lambda: MotionBlur(kernel_size=4), "kernel_size must be an odd"),
        (lambda: JPEG(quality=0), "quality must be >= 1"),
        (lambda: JPEG(quality=101), "quality must be <= 100"),
        (lambda: JPEG(codec="pil"), "codec must be one of kornia, libjpeg, got 'pil'"),
        (lambda: JPEG(quality_power=0), "quality_power must be a positive number"),
        (lambda: Haze(airlight=1.5), "airlight must be <= 1"),
        (lambda: LowLight(gain=0), "gain must be > 0"),
        (lambda: RainStreaks(density=2), "density must be <= 1"),
        (lambda: OneOf([]), "degradations must be a non-empty list"),
        (lambda: OneOf([Downscale(upsample=False)]), "changes the image size"),
        (lambda: OneOf([GaussianNoise()], weights=[-1]), "weights"),
        (lambda: Chain([GaussianNoise()], degradation_id="smog"), "unknown degradation 'smog'"),
        (lambda: build_degradation("smog"), "unknown degradation 'smog'; known: noise"),
        (lambda: build_degradation("noise", sigmaa=3), "its parameters are sigma, clip"),
    ],
)
def test_invalid_parameters_raise_an_error_naming_the_argument(build, message: str) -> None:
    # Torch-only classes name their argument; the entry points add the config key (at()).
    with pytest.raises(ArgumentError, match=message.replace("[", r"\[")) as info:
        build()
    keyed = info.value.at("data.degradation")
    assert keyed.startswith("data.degradation")
    if info.value.argument and str(info.value).startswith(message):
        assert keyed == f"data.degradation.{info.value}"


def test_bad_tensor_input_is_a_type_or_value_error() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        GaussianNoise()(torch.rand(3, 8, 8))
    with pytest.raises(TypeError):
        GaussianNoise()([1, 2, 3])  # type: ignore[arg-type]
