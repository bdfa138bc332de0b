"""Tests of the networks: shapes at any size, the two-pass data flow, gradients, presets, sizes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor, nn

from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
from rcot_lightning.errors import RCOTError
from rcot_lightning.nets import (
    Potential,
    RestormerUNet,
    TwoPassMap,
)
from rcot_lightning.nets.restormer import RestormerDecoder, RestormerEncoder
from rcot_lightning.shapes import crop_to
from rcot_lightning.shapes import pad_to_multiple as reflect_pad_to_multiple

TINY = MAP_PRESETS["tiny"]
MODES = ("bottleneck", "decoder")


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    torch.manual_seed(0)
    yield


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _perturb_scales(tmap: TwoPassMap) -> None:
    """Move the scales off their shared init so that mixing up injections would show."""
    with torch.no_grad():
        for k, scale in enumerate(tmap.condition_scales):
            scale.add_(0.1 * (k + 1))


# --- padding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 53), (8, 16), (3, 5), (1, 1)])
def test_pad_then_crop_is_identity(size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size)
    padded, original = reflect_pad_to_multiple(x, 8)
    assert original == size
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert padded.shape[-2] - size[0] < 8 and padded.shape[-1] - size[1] < 8
    torch.testing.assert_close(crop_to(padded, original), x, rtol=0, atol=0)


def test_pad_reflects_when_the_image_is_large_enough() -> None:
    x = torch.rand(1, 1, 9, 10)
    padded, _ = reflect_pad_to_multiple(x, 8)
    # Reflection excludes the edge pixel: row 9 mirrors row 7.
    torch.testing.assert_close(padded[..., 9, :10], x[..., 7, :])
    torch.testing.assert_close(padded[..., :9, 10], x[..., :, 8])


# --- RestormerUNet -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 53), (32, 32), (5, 7)])
def test_unet_keeps_any_size(size: tuple[int, int]) -> None:
    net = RestormerUNet(**TINY)
    assert net(torch.rand(2, 3, *size)).shape == (2, 3, *size)


def test_unet_forward_is_global_skip_on_padded_input_cropped_back() -> None:
    net = RestormerUNet(**TINY)
    x = torch.rand(2, 3, 37, 53)
    padded, size = reflect_pad_to_multiple(x, 8)
    expected = crop_to(padded + net.decode(*net.encode(padded)), size)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=0)


def test_unet_encode_shapes_and_decode_conditions_positions() -> None:
    net = RestormerUNet(**TINY)
    dim = TINY["dim"]
    skips, bottleneck = net.encode(torch.rand(1, 3, 16, 24))
    assert [tuple(s.shape) for s in skips] == [
        (1, dim, 16, 24),
        (1, 2 * dim, 8, 12),
        (1, 4 * dim, 4, 6),
    ]
    assert bottleneck.shape == (1, 8 * dim, 2, 3)
    # The documented shapes of the 4 injection points (deepest first) must add cleanly.
    conditions = [
        torch.rand(1, 8 * dim, 2, 3),
        torch.rand(1, 4 * dim, 4, 6),
        torch.rand(1, 2 * dim, 8, 12),
        torch.rand(1, dim, 16, 24),
    ]
    plain = net.decode(skips, bottleneck)
    for k in range(4):
        only_k: list[Tensor | None] = [None] * 4
        only_k[k] = conditions[k]
        conditioned = net.decode(skips, bottleneck, only_k)
        assert conditioned.shape == (1, 3, 16, 24)
        assert not torch.allclose(conditioned, plain)


def test_unet_out_channels_without_global_skip() -> None:
    net = RestormerUNet(in_channels=3, out_channels=1, **TINY)
    assert net(torch.rand(1, 3, 10, 12)).shape == (1, 1, 10, 12)


def test_unet_input_validation() -> None:
    net = RestormerUNet(**TINY)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        net([[0.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        net.encode(torch.rand(1, 3, 12, 16))
    skips, bottleneck = net.encode(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="4 entries"):
        net.decode(skips, bottleneck, [None])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heads": (1, 3, 1, 1)}, r"heads\[1\]=3 must divide"),
        ({"heads": (1, 1, 1)}, "heads must be a sequence of 4"),
        ({"num_blocks": (1, 1, 1)}, "num_blocks must be a sequence of 4"),
        ({"num_blocks": (1, -1, 1, 1)}, r"num_blocks\[1\]"),
        ({"dim": 0}, "dim must be an integer"),
        ({"ffn_expansion_factor": 0.1}, "ffn_expansion_factor"),
        ({"num_refinement_blocks": -1}, "num_refinement_blocks"),
    ],
)
def test_unet_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(RCOTError, match=match):
        RestormerUNet(**{**TINY, **kwargs})  # type: ignore[arg-type]


# --- TwoPassMap --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_two_pass_keeps_odd_size_and_reports_intermediates(mode: str) -> None:
    tmap = TwoPassMap(**TINY, conditioning=mode)
    y = torch.rand(2, 3, 37, 53)
    out = tmap.forward_with_intermediates(y)
    assert set(out) == {"first_pass", "residual", "output"}
    for value in out.values():
        assert value.shape == (2, 3, 37, 53)
    torch.testing.assert_close(out["first_pass"] + out["residual"], y)
    torch.testing.assert_close(tmap(y), out["output"], rtol=0, atol=0)
    assert not torch.allclose(out["output"], out["first_pass"])


def test_two_pass_pads_once_and_crops_back() -> None:
    tmap = TwoPassMap(**TINY)
    y = torch.rand(1, 3, 37, 53)
    padded, size = reflect_pad_to_multiple(y, 8)
    torch.testing.assert_close(tmap(y), crop_to(tmap(padded), size), rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_encoder_of_y_runs_once_and_decoder_twice(mode: str) -> None:
    tmap = TwoPassMap(**TINY, conditioning=mode)
    calls = {"encoder": 0, "decoder": 0, "residual_encoder": 0}

    def counter(name: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            calls[name] += 1

        return hook

    tmap.restoration.encoder.register_forward_hook(counter("encoder"))
    tmap.restoration.decoder.register_forward_hook(counter("decoder"))
    tmap.residual_encoder.register_forward_hook(counter("residual_encoder"))
    tmap(torch.rand(1, 3, 16, 16))
    assert calls == {"encoder": 1, "decoder": 2, "residual_encoder": 1}


@pytest.mark.parametrize("mode", MODES)
def test_zero_scales_make_pass_two_equal_pass_one(mode: str) -> None:
    tmap = TwoPassMap(**TINY, conditioning=mode)
    with torch.no_grad():
        for scale in tmap.condition_scales:
            scale.zero_()
    out = tmap.forward_with_intermediates(torch.rand(1, 3, 16, 16))
    torch.testing.assert_close(out["output"], out["first_pass"])


def _manual_output(tmap: TwoPassMap, y: Tensor, detach_residual: bool) -> Tensor:
    """T(y) recomputed from the parts, for inputs that need no padding."""
    unet = tmap.restoration
    skips, bottleneck = unet.encode(y)
    residual = y - (y + unet.decode(skips, bottleneck))
    if detach_residual:
        residual = residual.detach()
    r_skips, r_bottleneck = tmap.residual_encoder(residual)
    features = [r_bottleneck, r_skips[2], r_skips[1], r_skips[0]]
    conditions: list[Tensor | None] = [None] * 4
    for k, (scale, project) in enumerate(
        zip(tmap.condition_scales, tmap.condition_projections, strict=False)
    ):
        conditions[k] = scale * project(features[k])
    return y + unet.decode(skips, bottleneck, conditions)


def _grads(tmap: TwoPassMap, y: Tensor, output: Tensor) -> dict[str, Tensor]:
    names = [n for n, _ in tmap.named_parameters()] + ["input"]
    tensors = [*tmap.parameters(), y]
    return dict(zip(names, torch.autograd.grad(output.square().sum(), tensors), strict=True))


@pytest.mark.parametrize("mode", MODES)
def test_gradients_flow_through_pass_one(mode: str) -> None:
    tmap = TwoPassMap(**TINY, conditioning=mode)
    _perturb_scales(tmap)
    y = torch.rand(2, 3, 16, 16, requires_grad=True)

    model = _grads(tmap, y, tmap(y))
    manual = _grads(tmap, y, _manual_output(tmap, y, detach_residual=False))
    detached = _grads(tmap, y, _manual_output(tmap, y, detach_residual=True))

    # The manual recomputation is the model's computation...
    for name, grad in model.items():
        torch.testing.assert_close(grad, manual[name], msg=name)
    # ...and cutting r0 from the graph changes what the main path learns.
    for name in (
        "input",
        "restoration.encoder.patch_embed.weight",
        "restoration.decoder.output.weight",
    ):
        assert not torch.allclose(model[name], detached[name], rtol=1e-4, atol=0), name
    # The residual encoder sees the same r0 either way.
    torch.testing.assert_close(
        model["residual_encoder.patch_embed.weight"],
        detached["residual_encoder.patch_embed.weight"],
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conditioning": "bottleneck"},
        {"conditioning": "decoder"},
        {"conditioning": "bottleneck", "residual_dim": 8, "residual_blocks": (1, 0, 1, 2)},
        {"conditioning": "decoder", "residual_dim": 8},
    ],
    ids=["bottleneck", "decoder", "bottleneck-wider-residual", "decoder-wider-residual"],
)
def test_every_parameter_gets_a_finite_gradient(kwargs: dict[str, object]) -> None:
    tmap = TwoPassMap(**TINY, **kwargs)  # type: ignore[arg-type]
    tmap(torch.rand(2, 3, 13, 19)).sum().backward()
    for name, param in tmap.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize(("mode", "injections"), [("bottleneck", 1), ("decoder", 4)])
def test_condition_scales_are_learnable_and_start_at_condition_scale(
    mode: str, injections: int
) -> None:
    tmap = TwoPassMap(**TINY, conditioning=mode)
    assert len(tmap.condition_scales) == injections
    for scale in tmap.condition_scales:
        assert scale.requires_grad and scale.ndim == 0
        assert scale.item() == pytest.approx(0.8)
    custom = TwoPassMap(**TINY, conditioning=mode, condition_scale=0.5)
    assert all(s.item() == pytest.approx(0.5) for s in custom.condition_scales)


def test_residual_projections_only_when_widths_differ() -> None:
    same = TwoPassMap(**TINY, conditioning="decoder")
    assert all(isinstance(p, nn.Identity) for p in same.condition_projections)
    wider = TwoPassMap(**TINY, conditioning="decoder", residual_dim=8)
    assert all(isinstance(p, nn.Conv2d) for p in wider.condition_projections)


def test_two_pass_errors() -> None:
    with pytest.raises(RCOTError, match="conditioning must be one of"):
        TwoPassMap(**TINY, conditioning="encoder")
    with pytest.raises(RCOTError, match="residual_dim"):
        TwoPassMap(**{**TINY, "heads": (2, 2, 2, 2)}, residual_dim=3)
    with pytest.raises(RCOTError, match="residual_blocks"):
        TwoPassMap(**TINY, residual_blocks=(1, 1))
    with pytest.raises(RCOTError, match="condition_scale"):
        TwoPassMap(**TINY, condition_scale="0.8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="y must have shape"):
        TwoPassMap(**TINY)(torch.rand(1, 4, 8, 8))


# --- Potential ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (48, 80)])
def test_potential_scores_any_size(size: tuple[int, int]) -> None:
    phi = Potential(**POTENTIAL_PRESETS["tiny"])
    scores = phi(torch.rand(3, 3, *size))
    assert scores.shape == (3,)
    assert scores.dtype == torch.float32


def test_reference_potential_scores_32_px() -> None:
    phi = Potential()
    assert phi.num_downsamplings == 5
    assert phi(torch.rand(2, 3, 32, 32)).shape == (2,)


def test_potential_supports_double_backward() -> None:
    phi = Potential(**POTENTIAL_PRESETS["tiny"])
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(phi(x).sum(), x, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    # Biases only move the piecewise-constant LeakyReLU masks, so the input gradient (and the
    # penalty) depends on the weights alone.
    for name, param in phi.named_parameters():
        if name.endswith("weight"):
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name


def test_potential_layout_and_init() -> None:
    phi = Potential(channels=(16, 16, 32, 32, 64), init_std=0.05, init="normal")
    convs = [m for m in phi.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1]
    assert phi.num_downsamplings == 2 and phi.min_size == 4
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in phi.modules())
    assert convs[-1].weight.std().item() == pytest.approx(0.05, rel=0.1)
    assert all(torch.equal(c.bias, torch.zeros_like(c.bias)) for c in convs if c.bias is not None)
    assert phi(torch.rand(1, 3, 4, 4)).shape == (1,)
    with pytest.raises(ValueError, match="at least 4x4"):
        phi(torch.rand(1, 3, 3, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        phi(torch.rand(1, 1, 8, 8))


def test_potential_default_init_keeps_input_gradients_at_order_one() -> None:
    # The penalty asks for unit input-gradient norms. With the reference's N(0, 0.02) init the
    # norm starts near 1e-4 (the potential is nearly constant for hundreds of iterations); the
    # default He init starts it two to three orders of magnitude higher.
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    norms = {}
    for init in ("normal", "kaiming"):
        phi = Potential(channels=(16, 16, 32, 32, 64, 64, 128, 128), init=init)
        (grad,) = torch.autograd.grad(phi(x).sum(), x)
        norms[init] = grad.flatten(1).norm(dim=1).mean().item()
    assert norms["normal"] < 1e-3
    assert norms["kaiming"] > 100 * norms["normal"]
    assert Potential(channels=(8, 8)).trunk[0].weight.std().item() > 0.1  # He, not N(0, 0.02)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": ()},
        {"channels": (8, 0)},
        {"channels": "64"},
        {"init_std": 0.0},
        {"init": "xavier"},
        {"in_channels": 0},
    ],
)
def test_potential_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(RCOTError):
        Potential(**kwargs)  # type: ignore[arg-type]


# --- presets and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["small", "tiny"])
def test_presets_build_and_run(name: str) -> None:
    assert set(MAP_PRESETS) == set(POTENTIAL_PRESETS) == {"paper", "small", "tiny"}
    tmap = TwoPassMap(**MAP_PRESETS[name])
    unet = RestormerUNet(**MAP_PRESETS[name])
    phi = Potential(**POTENTIAL_PRESETS[name])
    y = torch.rand(1, 3, 32, 32)
    assert phi(tmap(y)).shape == (1,)
    assert unet(y).shape == (1, 3, 32, 32)


def test_paper_sizes() -> None:
    # Parameters only: the meta device allocates nothing and runs no forward.
    with torch.device("meta"):
        tmap = TwoPassMap(**MAP_PRESETS["paper"])
        unet = RestormerUNet(**MAP_PRESETS["paper"])
        phi = Potential(**POTENTIAL_PRESETS["paper"])
        encoder = RestormerEncoder(3, 48, (4, 6, 6, 8), (1, 2, 4, 8), 2.66)
        decoder = RestormerDecoder(3, 48, (4, 6, 6, 8), 4, (1, 2, 4, 8), 2.66)
    main, residual = _count(tmap.restoration), _count(tmap.residual_encoder)
    assert 25e6 <= main <= 28e6
    assert 15e6 <= residual <= 20e6
    assert _count(unet) == main == _count(encoder) + _count(decoder)
    assert _count(tmap) == main + residual + 1  # one bottleneck scale, no projection
    # Conv trunk of the reference, layer for layer (5x5, then 3x3 / 4x4-stride-2 pairs, the last
    # four without bias: 13,678,144 weights), its patch-sized Linear head replaced by 512 -> 1.
    assert _count(phi) == 13_678_144 + 513


def _attention_by_normalising(attn: nn.Module, x: Tensor) -> Tensor:
    """MDTA as Restormer writes it (F.normalize Q and K, then q k^T): the benchmark's reference."""
    from benchmarks.attention_speed import normalising_forward

    return normalising_forward(attn, x)  # type: ignore[arg-type]


def test_attention_from_gram_diagonals_equals_normalising_q_and_k() -> None:
    from rcot_lightning.nets.restormer import TransposedAttention

    torch.manual_seed(0)
    attn = TransposedAttention(12, heads=3, bias=True).double()
    with torch.no_grad():
        attn.temperature.uniform_(0.5, 2.0)
    x = torch.randn(2, 12, 9, 7, dtype=torch.float64)
    assert torch.allclose(attn(x), _attention_by_normalising(attn, x), atol=1e-12)
    # A head whose query is zero everywhere: both clamp its norm, neither divides by zero.
    zero = torch.zeros(1, 12, 4, 4, dtype=torch.float64)
    assert torch.allclose(attn(zero), _attention_by_normalising(attn, zero), atol=1e-12)


def test_attention_stays_finite_where_half_precision_sums_would_overflow() -> None:
    from rcot_lightning.nets.restormer import TransposedAttention

    torch.manual_seed(0)
    attn = TransposedAttention(8, heads=2)
    x = torch.randn(1, 8, 96, 96) * 30.0  # sum of squares over 9216 pixels: far above 65504
    with torch.no_grad():
        reference = _attention_by_normalising(attn, x)
        with torch.autocast("cpu", dtype=torch.float16):
            half = attn(x)
    assert torch.isfinite(half).all()
    assert torch.allclose(
        half.float(), reference, rtol=0.05, atol=0.05 * float(reference.abs().max())
    )
