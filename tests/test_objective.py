"""The FROT objective: values by hand, Parseval, gradients, and edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from rcot_lightning.contract import DegradationId
from rcot_lightning.errors import RCOTError
from rcot_lightning.objective import (
    FROTObjective,
    fourier_exponent_table,
    fourier_residual_cost,
    gradient_penalty,
    map_loss,
    potential_loss,
    reduce_fourier_cost,
    supervised_cost,
    transport_cost,
)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 3, 7, 13), (1, 1, 32, 5)])
def test_parseval_l2_fourier_norm_equals_pixel_norm(shape: tuple[int, ...]) -> None:
    r = torch.randn(shape, dtype=torch.float64)
    pixel_rms = r.pow(2).flatten(1).mean(1).sqrt()
    assert torch.allclose(fourier_residual_cost(r, 2, "ortho"), pixel_rms, atol=1e-9)
    # The unnormalised FFT grows with the patch area: the reason `ortho` is the default.
    backward = fourier_residual_cost(r, 2, "backward")
    area = shape[-1] * shape[-2]
    assert torch.allclose(backward, pixel_rms * math.sqrt(area), rtol=1e-9)


def test_fourier_cost_by_hand_on_a_constant_residual() -> None:
    # A constant c on a 2x2 image has one non-zero coefficient, the DC term:
    # ortho: 4c / sqrt(4) = 2c; unnormalised: 4c.
    c = 0.3
    r = torch.full((1, 1, 2, 2), c, dtype=torch.float64)
    assert fourier_residual_cost(r, 1).item() == pytest.approx(2 * c / 4)
    assert fourier_residual_cost(r, 2).item() == pytest.approx(math.sqrt((2 * c) ** 2 / 4))
    # The reference's `mean(|F r|^2) ** 1/2` is mean(|F r|^2) / 2 with an unnormalised FFT.
    assert fourier_residual_cost(r, 2, reference_formula=True).item() == pytest.approx(
        (4 * c) ** 2 / 4 / 2
    )
    assert fourier_residual_cost(r, 1, reference_formula=True).item() == pytest.approx(4 * c / 4)


def test_fourier_cost_selects_the_norm_per_sample() -> None:
    r = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    mixed = fourier_residual_cost(r, torch.tensor([1, 2, 2, 1]))
    l1, l2 = fourier_residual_cost(r, 1), fourier_residual_cost(r, 2)
    assert torch.equal(mixed, torch.stack([l1[0], l2[1], l2[2], l1[3]]))


def test_reference_reduction_sums_every_row_over_the_batch() -> None:
    costs = torch.tensor([1.0, 2.0, 3.0, 5.0])
    assert reduce_fourier_cost(costs).item() == pytest.approx(11 / 4)
    assert reduce_fourier_cost(costs, reference_formula=True).item() == pytest.approx(11.0)


@pytest.mark.parametrize("ids", [[0, 0, 0], [1, 1, 1], [0, 1, 0]], ids=["l2", "l1", "mixed"])
def test_reference_fourier_term_matches_the_authors_loop_by_hand(ids: list[int]) -> None:
    """B = 3: the authors add, per sample, ``mean(|F r|^2) / 2`` for noise rows (their
    ``**1/2``) and ``mean|F r|`` for the others, with an unnormalised FFT, summed."""
    g = torch.Generator().manual_seed(0)
    r = torch.randn(3, 3, 6, 10, generator=g, dtype=torch.float64)
    objective = FROTObjective(reference_fourier=True)
    exps = objective.exponents(torch.tensor(ids), 3)
    got = reduce_fourier_cost(fourier_residual_cost(r, exps, reference_formula=True), True)
    want = 0.0
    for i, family in enumerate(ids):
        spectrum = torch.fft.fft2(r[i])  # per sample, over its (H, W), as they slice
        if family == DegradationId.NOISE:
            want += float((spectrum.abs() ** 2).mean()) / 2
        else:
            want += float(spectrum.abs().mean())
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_objective_map_loss_is_the_weighted_sum_of_its_terms() -> None:
    g = torch.Generator().manual_seed(1)
    y, out, tgt = (torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    phi = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    paired = torch.tensor([True, False, True])
    ids = torch.tensor([DegradationId.NOISE, DegradationId.RAIN, DegradationId.NOISE])
    objective = FROTObjective(
        transport_weight=2.0,
        fourier_weight=3.0,
        potential_weight=0.5,
        supervised_weight=4.0,
        supervised_loss="l2",
    )
    loss, parts = objective.map_loss(y, out, phi, tgt, paired, ids)
    fourier = fourier_residual_cost(y - out, torch.tensor([2, 1, 2])).mean()
    sup = supervised_cost(out, tgt, paired, "l2")
    want = 2 * transport_cost(out, y).mean() + 3 * fourier + 4 * sup - 0.5 * phi.mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-12)
    assert parts["supervised"].item() == pytest.approx(sup.item())
    # Without a potential (a supervised baseline) phi leaves the loss entirely.
    loss0, _ = FROTObjective(potential_weight=0.0).map_loss(y, out, None, tgt, paired, ids)
    loss1, _ = FROTObjective(potential_weight=0.0).map_loss(y, out, phi, tgt, paired, ids)
    assert loss0.item() == loss1.item()


def test_objective_potential_loss_and_settings() -> None:
    objective = FROTObjective(lambda_gp=2.0, fourier_norms={"rain": 2})
    phi = _unit_gradient_potential((3, 4, 4), scale=3.0)
    real, fake = torch.rand(2, 3, 4, 4, dtype=torch.float64), torch.rand(2, 3, 4, 4).double()
    loss, parts = objective.potential_loss(phi, real, fake)
    assert parts["gradient_penalty"].item() == pytest.approx(4.0)
    assert loss.item() == pytest.approx(-parts["wasserstein"].item() + 2.0 * 4.0)
    assert objective.settings()["fourier_norms"]["rain"] == 2  # type: ignore[index]
    for bad, match in (
        ({"transport_cost": "huber"}, "transport_cost must be one of"),
        ({"fft_norm": "unitary"}, "fft_norm must be one of"),
        ({"supervised_weight": -1.0}, "supervised_weight must be a number >= 0"),
    ):
        with pytest.raises(RCOTError, match=match):
            FROTObjective(**bad)  # type: ignore[arg-type]


def test_fourier_cost_runs_in_float32_under_bf16_autocast() -> None:
    r = torch.randn(2, 3, 12, 10)
    expected = fourier_residual_cost(r, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fourier_residual_cost(r.bfloat16(), 2)
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=1e-2)


def test_transport_cost_by_hand() -> None:
    y = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    t = torch.tensor([[[[3.0, -4.0]]]], dtype=torch.float64)  # r = (-3, 4)
    assert transport_cost(t, y, "l1").item() == pytest.approx(3.5)
    assert transport_cost(t, y, "l2").item() == pytest.approx(12.5)
    assert transport_cost(t, y, "rms").item() == pytest.approx(math.sqrt(12.5))


def test_supervised_cost_uses_only_paired_rows_and_divides_by_batch() -> None:
    out = torch.zeros(3, 1, 2, 2)
    target = torch.stack([torch.full((1, 2, 2), v) for v in (1.0, 2.0, 4.0)])
    paired = torch.tensor([True, False, True])
    assert supervised_cost(out, target, paired, "l1").item() == pytest.approx((1 + 4) / 3)
    assert supervised_cost(out, target, paired, "l2").item() == pytest.approx((1 + 16) / 3)
    none = supervised_cost(out, target, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0


def test_potential_and_map_losses_by_hand() -> None:
    loss, w = potential_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]), torch.tensor(0.5))
    assert w.item() == pytest.approx(1.5)
    assert loss.item() == pytest.approx(-1.5 + 10 * 0.5)
    total = map_loss(
        torch.tensor([2.0, 4.0]),
        torch.tensor([1.0, 3.0]),
        torch.tensor(0.5),
        torch.tensor(0.25),
        transport_weight=2.0,
        fourier_weight=3.0,
        supervised_weight=4.0,
    )
    assert total.item() == pytest.approx(2 * 2 + 3 * 0.5 + 4 * 0.25 - 3)


def _unit_gradient_potential(shape: tuple[int, ...], scale: float = 1.0):
    w = torch.randn(shape, dtype=torch.float64)
    w = scale * w / w.norm()
    return lambda t: (t * w).flatten(1).sum(1)


def test_gradient_penalty_is_zero_for_unit_norm_gradient_everywhere() -> None:
    phi = _unit_gradient_potential((3, 6, 5))
    real = torch.rand(4, 3, 6, 5, dtype=torch.float64)
    fake = torch.rand(4, 3, 6, 5, dtype=torch.float64)
    assert gradient_penalty(phi, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    # Gradient norm 3 everywhere: (3 - 1)^2 = 4 whatever the mixing weights.
    phi3 = _unit_gradient_potential((3, 6, 5), scale=3.0)
    assert gradient_penalty(phi3, real, fake).item() == pytest.approx(4.0)


def test_gradient_penalty_uses_given_mixing_weights_and_detaches_fake() -> None:
    phi = lambda t: t.pow(2).flatten(1).sum(1)  # noqa: E731  grad = 2 x_hat
    real = torch.ones(2, 1, 1, 1, dtype=torch.float64)
    fake = torch.zeros(2, 1, 1, 1, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor([0.25, 1.0], dtype=torch.float64)
    gp = gradient_penalty(phi, real, fake, alpha)
    # x_hat = alpha, ||grad|| = 2 alpha: ((0.5 - 1)^2 + (2 - 1)^2) / 2
    assert gp.item() == pytest.approx((0.25 + 1.0) / 2)
    gp.backward()
    assert fake.grad is None


def test_gradient_penalty_is_invariant_to_a_grad_scale() -> None:
    conv = torch.nn.Conv2d(3, 1, 3).double()
    phi = lambda t: torch.tanh(conv(t)).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.rand(2, 3, 8, 8).double(), torch.rand(2, 3, 8, 8).double()
    alpha = torch.rand(2, dtype=torch.float64)
    plain = gradient_penalty(phi, real, fake, alpha)
    scaled = gradient_penalty(phi, real, fake, alpha, grad_scale=65536.0)
    assert torch.allclose(plain, scaled, rtol=1e-10)


def test_gradient_penalty_backpropagates_into_potential_weights_under_bf16() -> None:
    conv = torch.nn.Conv2d(3, 1, 3)
    phi = lambda t: conv(t).flatten(1).mean(1)  # noqa: E731
    real, fake = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(phi, real, fake)
    assert gp.dtype == torch.float32 and torch.isfinite(gp)
    gp.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_gradcheck_of_costs_in_float64() -> None:
    torch.manual_seed(0)
    out = torch.rand(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    exps = torch.tensor([1, 2])
    for kind in ("rms", "l1", "l2"):
        assert torch.autograd.gradcheck(lambda t, k=kind: transport_cost(t, y, k), (out,))
    assert torch.autograd.gradcheck(lambda t: fourier_residual_cost(y - t, exps), (out,))
    assert torch.autograd.gradcheck(
        lambda t: fourier_residual_cost(y - t, 2, reference_formula=True), (out,)
    )
    paired = torch.tensor([True, False])
    for kind in ("l1", "l2"):
        assert torch.autograd.gradcheck(lambda t, k=kind: supervised_cost(t, y, paired, k), (out,))


def test_gradcheck_of_gradient_penalty_wrt_potential_weights() -> None:
    torch.manual_seed(0)
    weight = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    real, fake = torch.rand(2, 3, 6, 6).double(), torch.rand(2, 3, 6, 6).double()
    alpha = torch.rand(2, dtype=torch.float64)

    def penalty(w: Tensor) -> Tensor:
        phi = lambda t: torch.tanh(torch.nn.functional.conv2d(t, w)).flatten(1).sum(1)  # noqa: E731
        return gradient_penalty(phi, real, fake, alpha)

    assert torch.autograd.gradcheck(penalty, (weight,))


def test_no_nan_or_inf_at_zero_residual() -> None:
    y = torch.rand(2, 3, 8, 8)
    out = y.clone().requires_grad_(True)
    terms = [
        transport_cost(out, y, "rms").sum(),
        transport_cost(out, y, "l1").sum(),
        fourier_residual_cost(y - out, 1).sum(),
        fourier_residual_cost(y - out, 2).sum(),
        supervised_cost(out, y, kind="l1"),
    ]
    for term in terms:
        (grad,) = torch.autograd.grad(term, out)
        assert torch.isfinite(term) and torch.isfinite(grad).all()
    # A potential with zero input gradient: the penalty is (0 - 1)^2 with finite gradients.
    weight = torch.zeros(1, 3, 1, 1, requires_grad=True)
    phi = lambda t: torch.nn.functional.conv2d(t, weight).flatten(1).sum(1)  # noqa: E731
    gp = gradient_penalty(phi, y, y)
    (grad,) = torch.autograd.grad(gp, weight)
    assert gp.item() == pytest.approx(1.0, abs=1e-5) and torch.isfinite(grad).all()


def test_exponent_table_defaults_and_overrides() -> None:
    table = fourier_exponent_table()
    assert table[DegradationId.NOISE] == 2
    assert all(table[d] == 1 for d in DegradationId if d != DegradationId.NOISE)
    assert fourier_exponent_table({"rain": 2})[DegradationId.RAIN] == 2
    with pytest.raises(RCOTError, match="fourier_norms"):
        fourier_exponent_table({"snow": 1})
    with pytest.raises(RCOTError, match=r"fourier_norms\.noise"):
        fourier_exponent_table({"noise": 3})


def test_bad_arguments_raise_clear_errors() -> None:
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(RCOTError, match="transport_cost"):
        transport_cost(x, x, "huber")  # type: ignore[arg-type]
    with pytest.raises(RCOTError, match="supervised_loss"):
        supervised_cost(x, x, kind="l3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fourier_residual_cost(torch.rand(3, 4, 4))
    with pytest.raises(RCOTError, match="1 or 2"):
        fourier_residual_cost(x, 3)
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lambda t: t.sum((1, 2, 3)), x, torch.rand(2, 3, 4, 5))
