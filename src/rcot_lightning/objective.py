r"""The Fourier residual-guided OT (FROT) objective of RCOT as small pure functions.

With a transport map :math:`T`, a potential :math:`\varphi`, degraded samples :math:`y \sim P`,
clean samples :math:`x \sim Q` and the transport residual :math:`r = y - T(y)`, RCOT solves

.. math::

    \sup_\varphi \inf_T \; \mathbb{E}_x[\varphi(x)]
        + \mathbb{E}_y[\,c(T(y), y) + g(y - T(y)) - \varphi(T(y))\,]

* potential step: minimise ``mean phi(T(y)) - mean phi(x) + lambda_gp * GP``
  (:func:`potential_loss`);
* map step: minimise ``w_c c + w_g g - mean phi(T(y)) + w_s * supervised`` (:func:`map_loss`).

Every function here needs only torch, so the objective can be reused without Lightning.
Per-sample costs have shape ``(B,)``; losses are scalars.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from rcot_lightning.contract import DegradationId
from rcot_lightning.errors import ArgumentError, RCOTError
from rcot_lightning.shapes import check_images, check_same_shape
from rcot_lightning.values import one_of

__all__ = [
    "DEFAULT_FOURIER_NORMS",
    "FROTObjective",
    "fourier_exponent_table",
    "fourier_residual_cost",
    "gradient_penalty",
    "map_loss",
    "potential_loss",
    "reduce_fourier_cost",
    "supervised_cost",
    "transport_cost",
]

TransportCost = Literal["rms", "l1", "l2"]
SupervisedLoss = Literal["l1", "l2"]
FFTNorm = Literal["ortho", "backward", "forward"]

# A square root is not differentiable at 0; a tiny floor keeps gradients finite when a
# residual (or a penalty gradient) is exactly zero, and changes values by at most 1e-6.
_SQRT_EPS = 1e-12

#: Fourier norm exponent per degradation family: Gaussian noise has a flat spectrum, so an
#: l2-type norm; rain, haze, blur, SR, JPEG and low light leave residuals that are sparse in
#: frequency, so l1 (reference §2).
DEFAULT_FOURIER_NORMS: dict[str, int] = {d.name.lower(): 1 for d in DegradationId} | {"noise": 2}


def _upcast(t: Tensor) -> Tensor:
    """Half-precision values to float32 for reductions; float32/float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _safe_sqrt(x: Tensor) -> Tensor:
    return torch.sqrt(x + _SQRT_EPS)


def transport_cost(output: Tensor, degraded: Tensor, kind: TransportCost = "rms") -> Tensor:
    r"""Per-sample transport cost :math:`c(T(y), y)` of moving ``degraded`` to ``output``.

    * ``"rms"`` (the reference): :math:`\sqrt{\operatorname{mean}(r^2)}`;
    * ``"l1"``: :math:`\operatorname{mean}|r|`;
    * ``"l2"``: :math:`\operatorname{mean}(r^2)` (the quadratic cost),

    with :math:`r = y - T(y)` and means over ``(C, H, W)``.

    Args:
        output: :math:`T(y)`, shape ``(B, C, H, W)``.
        degraded: :math:`y`, shape ``(B, C, H, W)``.
        kind: ``"rms"``, ``"l1"`` or ``"l2"``.

    Returns:
        Costs of shape ``(B,)``.

    Example:
        >>> y = torch.zeros(2, 3, 4, 4)
        >>> t = torch.full((2, 3, 4, 4), 0.5)
        >>> transport_cost(t, y, "l1")
        tensor([0.5000, 0.5000])
        >>> transport_cost(t, y, "rms")
        tensor([0.5000, 0.5000])
    """
    check_same_shape("output", output, "degraded", degraded)
    r = (degraded - output).flatten(1)
    if kind == "rms":
        return _safe_sqrt(r.pow(2).mean(1))
    if kind == "l1":
        return r.abs().mean(1)
    if kind == "l2":
        return r.pow(2).mean(1)
    raise ArgumentError("transport_cost", f"must be one of 'rms', 'l1', 'l2', got {kind!r}")


def fourier_residual_cost(
    residual: Tensor,
    exponent: Tensor | int = 1,
    fft_norm: FFTNorm = "ortho",
    reference_formula: bool = False,
) -> Tensor:
    r"""Per-sample Fourier residual cost :math:`g(r)` on the 2-D spectrum :math:`\hat r = F r`.

    With ``exponent`` 1, :math:`g(r) = \operatorname{mean}|\hat r|`; with 2,
    :math:`g(r) = \sqrt{\operatorname{mean}|\hat r|^2}`; means over ``(C, H, W)`` and the FFT over
    ``(H, W)``. With ``fft_norm="ortho"`` the transform is unitary, so by Parseval the l2 cost
    equals the pixel-domain RMS of ``r`` and does not grow with the patch area.

    ``reference_formula=True`` reproduces the authors' script for comparison: an unnormalised
    FFT, and for exponent 2 the value ``mean(|F r|^2) / 2`` (their ``**1/2`` parses as a
    division, not a square root). Combine it with :func:`reduce_fourier_cost` to also sum every
    row over the batch as they do.

    The cost is always computed in float32 with autocast off: half-precision FFTs are
    unsupported on CPU and limited to power-of-two sizes on GPU.

    Args:
        residual: :math:`r = y - T(y)`, shape ``(B, C, H, W)``.
        exponent: 1 or 2, one for the batch or a ``(B,)`` tensor with one per sample.
        fft_norm: normalisation of :func:`torch.fft.fft2`; ignored by ``reference_formula``.
        reference_formula: reproduce the reference implementation's formula.

    Returns:
        Costs of shape ``(B,)``, float32 (float64 for float64 input).

    Example:
        >>> r = torch.randn(2, 3, 8, 8)
        >>> rms = r.pow(2).mean(dim=(1, 2, 3)).sqrt()
        >>> torch.allclose(fourier_residual_cost(r, 2), rms, atol=1e-5)  # Parseval
        True
        >>> fourier_residual_cost(torch.zeros(1, 3, 8, 8), torch.tensor([1]))
        tensor([0.])
    """
    check_images(residual, "residual")
    batch = residual.shape[0]
    exp = torch.as_tensor(exponent, device=residual.device)
    if exp.dim() == 0:
        exp = exp.expand(batch)
    if exp.shape != (batch,):
        raise ArgumentError(
            "exponent", f"must be a scalar or have shape ({batch},), got {tuple(exp.shape)}"
        )
    if not bool(((exp == 1) | (exp == 2)).all()):
        raise RCOTError(f"Fourier norm exponents must be 1 or 2, got {exp.unique().tolist()}")
    norm: FFTNorm = "backward" if reference_formula else fft_norm
    if norm not in ("ortho", "backward", "forward"):
        raise ArgumentError("fft_norm", f"must be 'ortho', 'backward' or 'forward', got {norm!r}")

    with torch.autocast(device_type=residual.device.type, enabled=False):
        r = _upcast(residual)
        spectrum = torch.fft.fft2(r, norm=norm)
        # |F r|^2 from the real and imaginary parts is smooth everywhere, unlike |F r| at 0.
        power = torch.view_as_real(spectrum).pow(2).sum(-1).flatten(1).mean(1)
        l1 = spectrum.abs().flatten(1).mean(1)
        l2 = power / 2 if reference_formula else _safe_sqrt(power)
        return torch.where(exp == 2, l2, l1)


def reduce_fourier_cost(costs: Tensor, reference_formula: bool = False) -> Tensor:
    r"""Reduce per-sample Fourier costs to a scalar.

    By default the batch mean, so the term is a mean of per-sample terms (batch-size invariant,
    and DDP's gradient average over ranks equals one process on the whole batch). With
    ``reference_formula`` every row is summed over the batch, l1 and l2 families alike, as the
    authors' script accumulates ``fourier_res_peanlty +=`` per sample.

    Args:
        costs: output of :func:`fourier_residual_cost`, shape ``(B,)``.
        reference_formula: reproduce the reference reduction (a batch sum).

    Returns:
        A scalar tensor.

    Example:
        >>> reduce_fourier_cost(torch.tensor([1.0, 3.0]))
        tensor(2.)
        >>> reduce_fourier_cost(torch.tensor([1.0, 3.0]), reference_formula=True)
        tensor(4.)
    """
    return costs.sum() if reference_formula else costs.mean()


def fourier_exponent_table(norms: Mapping[str, int] | None = None) -> Tensor:
    """Look-up table from :class:`~rcot_lightning.contract.DegradationId` to Fourier exponent.

    Args:
        norms: overrides of :data:`DEFAULT_FOURIER_NORMS`, e.g. ``{"noise": 1}``; keys are
            degradation names, values 1 (l1) or 2 (l2).

    Returns:
        A long tensor of shape ``(len(DegradationId),)``; index it with ``batch["degradation"]``.

    Example:
        >>> fourier_exponent_table()[DegradationId.NOISE].item()
        2
        >>> fourier_exponent_table({"noise": 1})[DegradationId.NOISE].item()
        1
    """
    merged = dict(DEFAULT_FOURIER_NORMS)
    for key, value in (norms or {}).items():
        name = str(key).lower()
        if name not in merged:
            raise ArgumentError(
                "fourier_norms",
                f"has unknown degradation {key!r}; known: {', '.join(sorted(merged))}",
            )
        if value not in (1, 2):
            raise ArgumentError(f"fourier_norms.{name}", f"must be 1 or 2, got {value!r}")
        merged[name] = int(value)
    return torch.tensor([merged[d.name.lower()] for d in DegradationId], dtype=torch.long)


def gradient_penalty(
    potential: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    alpha: Tensor | None = None,
    grad_scale: float | None = None,
) -> Tensor:
    r"""WGAN-GP penalty :math:`\operatorname{mean}((\lVert\nabla\varphi(\hat x)\rVert_2 - 1)^2)`.

    :math:`\hat x = a x + (1 - a) T(y)` with one :math:`a \sim U(0, 1)` per sample. The gradient
    is taken with respect to the interpolated *inputs* (``create_graph=True`` so the penalty can
    be back-propagated into the potential's weights), and ``fake`` is detached.

    Under a GradScaler (``16-mixed``) pass its current scale as ``grad_scale``: the potential's
    output is scaled before differentiation so small fp16 gradients do not underflow, and the
    input gradients are unscaled before the norm (the PyTorch AMP recipe for gradient
    penalties). Norms are computed in float32 so ``bf16-mixed`` loses no precision there.

    Args:
        potential: maps ``(B, C, H, W)`` to scores ``(B,)`` (or ``(B, 1)``).
        real: clean samples :math:`x`, ``(B, C, H, W)``.
        fake: restored samples :math:`T(y)`, ``(B, C, H, W)``.
        alpha: optional mixing weights ``(B,)``; drawn from ``U(0, 1)`` when omitted.
        grad_scale: the loss scale of an active GradScaler, else ``None``.

    Returns:
        A scalar tensor.

    Example:
        >>> w = torch.randn(3, 4, 4)
        >>> w = w / w.norm()
        >>> phi = lambda t: (t * w).sum(dim=(1, 2, 3))  # input gradient w has unit norm
        >>> gp = gradient_penalty(phi, torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4))
        >>> bool(gp.abs() < 1e-10)
        True
    """
    check_same_shape("real", real, "fake", fake)
    batch = real.shape[0]
    if alpha is None:
        alpha = torch.rand(batch, device=real.device, dtype=real.dtype)
    a = alpha.to(real.dtype).view(batch, 1, 1, 1)
    mixed = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    scores = potential(mixed)
    total = scores.sum()
    if grad_scale is not None:
        total = total * grad_scale
    (grad,) = torch.autograd.grad(total, mixed, create_graph=True)
    grad = _upcast(grad)
    if grad_scale is not None:
        grad = grad / grad_scale
    norm = _safe_sqrt(grad.flatten(1).pow(2).sum(1))
    return (norm - 1).pow(2).mean()


def supervised_cost(
    output: Tensor, target: Tensor, paired: Tensor | None = None, kind: SupervisedLoss = "l1"
) -> Tensor:
    r"""Supervised fidelity :math:`\frac{1}{B}\sum_{i\ \mathrm{paired}} \ell(T(y_i), x_i)`.

    ``l1`` is :math:`\operatorname{mean}|T(y) - x|`, ``l2`` is :math:`\operatorname{mean}(T(y)-x)^2`
    per sample. Only rows marked ``paired`` contribute, and the sum is divided by the full batch
    size, so a paired sample weighs the same whatever the paired fraction of its batch. Rows
    that are not paired never touch ``target`` (it may hold anything finite).

    Args:
        output: :math:`T(y)`, ``(B, C, H, W)``.
        target: ground truth aligned with ``y``, ``(B, C, H, W)``.
        paired: ``(B,)`` bool mask; ``None`` means every row is paired.
        kind: ``"l1"`` or ``"l2"``.

    Returns:
        A scalar tensor; exactly 0 when no row is paired.

    Example:
        >>> out, tgt = torch.ones(2, 3, 2, 2), torch.zeros(2, 3, 2, 2)
        >>> supervised_cost(out, tgt)
        tensor(1.)
        >>> supervised_cost(out, tgt, torch.tensor([True, False]))
        tensor(0.5000)
        >>> supervised_cost(out, tgt, torch.tensor([False, False]))
        tensor(0.)
    """
    check_same_shape("output", output, "target", target)
    diff = (output - target).flatten(1)
    if kind == "l1":
        per_sample = diff.abs().mean(1)
    elif kind == "l2":
        per_sample = diff.pow(2).mean(1)
    else:
        raise ArgumentError("supervised_loss", f"must be 'l1' or 'l2', got {kind!r}")
    if paired is None:
        return per_sample.mean()
    if paired.shape != (output.shape[0],):
        raise ArgumentError(
            "paired", f"must have shape ({output.shape[0]},), got {tuple(paired.shape)}"
        )
    return torch.where(paired.bool(), per_sample, torch.zeros_like(per_sample)).sum() / len(paired)


def potential_loss(
    potential_real: Tensor, potential_fake: Tensor, penalty: Tensor, lambda_gp: float = 10.0
) -> tuple[Tensor, Tensor]:
    r"""Loss of the potential step and the Wasserstein estimate.

    .. math:: L_\varphi = \operatorname{mean}\varphi(T(y)) - \operatorname{mean}\varphi(x)
              + \lambda_{gp}\, GP

    Args:
        potential_real: :math:`\varphi(x)`, ``(B,)``.
        potential_fake: :math:`\varphi(T(y))` with :math:`T(y)` detached, ``(B,)``.
        penalty: :func:`gradient_penalty`, scalar.
        lambda_gp: penalty weight (10 in WGAN-GP and the reference).

    Returns:
        ``(loss, wasserstein)`` where ``wasserstein = mean phi(x) - mean phi(T(y))``.

    Example:
        >>> loss, w = potential_loss(torch.tensor([2.0]), torch.tensor([0.5]), torch.tensor(0.1))
        >>> round(loss.item(), 4), round(w.item(), 4)
        (-0.5, 1.5)
    """
    wasserstein = _upcast(potential_real).mean() - _upcast(potential_fake).mean()
    return -wasserstein + lambda_gp * penalty, wasserstein


def map_loss(
    potential_fake: Tensor,
    transport: Tensor,
    fourier: Tensor,
    supervised: Tensor,
    transport_weight: float = 1.0,
    fourier_weight: float = 1.0,
    supervised_weight: float = 1.0,
) -> Tensor:
    r"""Loss of the map step.

    .. math:: L_T = w_c\,\operatorname{mean} c(T(y), y) + w_g\, g + w_s\, \ell_{sup}
              - \operatorname{mean}\varphi(T(y))

    Args:
        potential_fake: :math:`\varphi(T(y))` with gradients to :math:`T`, ``(B,)``.
        transport: :func:`transport_cost`, ``(B,)``.
        fourier: the reduced Fourier cost (:func:`reduce_fourier_cost`), scalar.
        supervised: :func:`supervised_cost`, scalar.
        transport_weight: :math:`w_c`.
        fourier_weight: :math:`w_g`.
        supervised_weight: :math:`w_s`.

    Returns:
        A scalar tensor.

    Example:
        >>> phi, c = torch.tensor([1.0]), torch.tensor([0.5])
        >>> map_loss(phi, c, torch.tensor(0.25), torch.tensor(0.0))
        tensor(-0.2500)
    """
    return (
        transport_weight * _upcast(transport).mean()
        + fourier_weight * fourier
        + supervised_weight * supervised
        - _upcast(potential_fake).mean()
    )


class FROTObjective(nn.Module):
    r"""The FROT objective with its settings: one object for the potential and the map losses.

    It owns the transport cost, the Fourier residual cost (norm per degradation family, FFT
    normalisation, the reference flag), the gradient penalty weight, the supervised term and
    the weights of every term; the pure functions above do the arithmetic. Every term is a mean
    of per-sample terms (unless ``reference_fourier``), so the losses do not depend on how a
    batch is split over processes.

    .. math::

        L_\varphi &= \operatorname{mean}\varphi(T(y)) - \operatorname{mean}\varphi(x)
                     + \lambda_{gp} GP \\
        L_T &= w_c\, c(T(y), y) + w_g\, g(y - T(y)) - w_\varphi \operatorname{mean}
               \varphi(T(y)) + w_s\, \ell_{sup}(T(y), x)

    Args:
        transport_cost: ``"rms"`` (the reference), ``"l1"`` or ``"l2"``.
        transport_weight: :math:`w_c`.
        fourier_weight: :math:`w_g`.
        fourier_norms: per-degradation exponent overrides, e.g. ``{"noise": 2, "rain": 1}``.
        fft_norm: FFT normalisation of ``g`` (``"ortho"``: Parseval holds).
        reference_fourier: the authors' ``g`` (unnormalised FFT, ``mean|F r|^2 / 2`` for
            noise, ``mean|F r|`` otherwise) summed over the batch.
        potential_weight: :math:`w_\varphi`; 0 removes the potential from the map loss and
            tells the module to skip the potential updates (a purely supervised baseline).
        lambda_gp: gradient-penalty weight.
        supervised_loss: ``"l1"`` or ``"l2"``, on rows marked ``paired``.
        supervised_weight: :math:`w_s` (the reference uses 1e4 with l1).

    Example:
        >>> objective = FROTObjective(supervised_weight=0.0)
        >>> y = torch.rand(2, 3, 8, 8)
        >>> loss, parts = objective.map_loss(y, y.clone(), torch.zeros(2))
        >>> round(loss.item(), 4), sorted(parts)
        (0.0, ['fourier_cost', 'map_loss', 'supervised', 'transport_cost'])
    """

    fourier_exponents: Tensor

    def __init__(
        self,
        *,
        transport_cost: TransportCost = "rms",
        transport_weight: float = 1.0,
        fourier_weight: float = 1.0,
        fourier_norms: Mapping[str, int] | None = None,
        fft_norm: FFTNorm = "ortho",
        reference_fourier: bool = False,
        potential_weight: float = 1.0,
        lambda_gp: float = 10.0,
        supervised_loss: SupervisedLoss = "l1",
        supervised_weight: float = 1.0,
    ) -> None:
        super().__init__()
        weights = {
            "transport_weight": transport_weight,
            "fourier_weight": fourier_weight,
            "potential_weight": potential_weight,
            "lambda_gp": lambda_gp,
            "supervised_weight": supervised_weight,
        }
        for name, value in weights.items():
            if not (isinstance(value, int | float) and value >= 0):
                raise ArgumentError(name, f"must be a number >= 0, got {value!r}")
        one_of(transport_cost, "transport_cost", ("rms", "l1", "l2"))
        one_of(fft_norm, "fft_norm", ("ortho", "backward", "forward"))
        one_of(supervised_loss, "supervised_loss", ("l1", "l2"))
        self.transport_cost = transport_cost
        self.fft_norm = fft_norm
        self.reference_fourier = bool(reference_fourier)
        self.supervised_loss = supervised_loss
        self.transport_weight = float(transport_weight)
        self.fourier_weight = float(fourier_weight)
        self.potential_weight = float(potential_weight)
        self.lambda_gp = float(lambda_gp)
        self.supervised_weight = float(supervised_weight)
        self.register_buffer(
            "fourier_exponents", fourier_exponent_table(fourier_norms), persistent=False
        )

    @property
    def uses_potential(self) -> bool:
        """Whether the potential enters the map loss (and so needs training)."""
        return self.potential_weight > 0

    def settings(self) -> dict[str, object]:
        """The objective's settings as plain values (for logs and hyper-parameter tables)."""
        norms = {
            d.name.lower(): int(e)
            for d, e in zip(DegradationId, self.fourier_exponents, strict=True)
        }
        return {
            "transport_cost": self.transport_cost,
            "transport_weight": self.transport_weight,
            "fourier_weight": self.fourier_weight,
            "fourier_norms": norms,
            "fft_norm": self.fft_norm,
            "reference_fourier": self.reference_fourier,
            "potential_weight": self.potential_weight,
            "lambda_gp": self.lambda_gp,
            "supervised_loss": self.supervised_loss,
            "supervised_weight": self.supervised_weight,
        }

    def exponents(self, degradation: Tensor | None, batch: int) -> Tensor:
        """Fourier exponent per row; rows without a degradation id count as noise."""
        if degradation is None:
            degradation = torch.zeros(batch, dtype=torch.long, device=self.fourier_exponents.device)
        return self.fourier_exponents[degradation.long()]

    def potential_loss(
        self,
        potential: Callable[[Tensor], Tensor],
        real: Tensor,
        fake: Tensor,
        alpha: Tensor | None = None,
        grad_scale: float | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss of one potential step (``fake`` = :math:`T(y)`, detached here).

        Args:
            potential: scores ``(B, C, H, W) -> (B,)``.
            real: clean samples :math:`x`.
            fake: restored samples :math:`T(y)`.
            alpha: the penalty's mixing weights ``(B,)`` (see :func:`gradient_penalty`).
            grad_scale: the scale of an active GradScaler, else ``None``.

        Returns:
            ``(loss, parts)`` with parts ``potential_loss``, ``wasserstein`` and
            ``gradient_penalty`` (detached).
        """
        fake = fake.detach()
        penalty = gradient_penalty(potential, real, fake, alpha, grad_scale)
        loss, wasserstein = potential_loss(
            potential(real), potential(fake), penalty, self.lambda_gp
        )
        parts = {"potential_loss": loss, "wasserstein": wasserstein, "gradient_penalty": penalty}
        return loss, {name: value.detach() for name, value in parts.items()}

    def map_loss(
        self,
        degraded: Tensor,
        restored: Tensor,
        potential_restored: Tensor | None,
        target: Tensor | None = None,
        paired: Tensor | None = None,
        degradation: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss of the map step.

        Args:
            degraded: :math:`y`, ``(B, C, H, W)``.
            restored: :math:`T(y)` with its graph, ``(B, C, H, W)``.
            potential_restored: :math:`\varphi(T(y))` ``(B,)``, or ``None`` when
                :attr:`uses_potential` is false.
            target: ground truth aligned with ``degraded``, or ``None`` (unpaired).
            paired: ``(B,)`` bool, the rows whose ``target`` is valid; ``None``: all rows.
            degradation: ``(B,)`` degradation ids selecting the Fourier norm per row.

        Returns:
            ``(loss, parts)`` with parts ``map_loss``, ``transport_cost``, ``fourier_cost`` and
            ``supervised`` (detached scalars).
        """
        batch = degraded.shape[0]
        transport = transport_cost(restored, degraded, self.transport_cost)
        exponents = self.exponents(degradation, batch)
        fourier = reduce_fourier_cost(
            fourier_residual_cost(
                degraded - restored, exponents, self.fft_norm, self.reference_fourier
            ),
            self.reference_fourier,
        )
        if target is None or self.supervised_weight == 0:
            supervised = restored.new_zeros((), dtype=torch.float32)
        else:
            supervised = supervised_cost(restored, target, paired, self.supervised_loss)
        if potential_restored is None or not self.uses_potential:
            potential_restored = restored.new_zeros(batch, dtype=torch.float32)
        loss = map_loss(
            self.potential_weight * potential_restored,
            transport,
            fourier,
            supervised,
            self.transport_weight,
            self.fourier_weight,
            self.supervised_weight,
        )
        parts = {
            "map_loss": loss,
            "transport_cost": transport.mean(),
            "fourier_cost": fourier,
            "supervised": supervised,
        }
        return loss, {name: value.detach() for name, value in parts.items()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "fourier_norms")
