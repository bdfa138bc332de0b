"""The two-pass transport map with transport residual conditioning (TRC), RCOT §3.

    r0   = y - G(y)                 pass 1: base restoration (Restormer U-Net with global skip)
    T(y) = y + D(enc(y) | E(r0))    pass 2: the same decoder D, conditioned on E(r0)

The encoder of ``y`` runs once; its skips and bottleneck feed both decoder passes. E is a second
Restormer encoder on the residual. Nothing is detached: the loss on T(y) also trains pass 1
through r0, which is what makes the residual a learned, degradation-specific cue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from rcot_lightning.errors import ArgumentError
from rcot_lightning.nets.restormer import (
    PAD_MULTIPLE,
    RestormerEncoder,
    RestormerUNet,
    check_restormer_config,
    set_checkpointing,
)
from rcot_lightning.shapes import check_images, crop_to, pad_to_multiple

__all__ = ["CONDITIONING_MODES", "TwoPassMap"]

#: ``"bottleneck"``: RCOT (the residual bottleneck is added to the main bottleneck);
#: ``"decoder"``: DA-RCOT style (residual features of every scale enter every decoder level).
CONDITIONING_MODES = ("bottleneck", "decoder")


class TwoPassMap(nn.Module):
    """The RCOT transport map T: a Restormer U-Net run twice, the second time conditioned on the
    embedding of its own first-pass residual.

    Conditioning (each injection ``k`` has its own learnable scalar ``s_k``, initialised at
    ``condition_scale``; features are 1x1-projected only when ``residual_dim != dim``):

    * ``"bottleneck"`` (RCOT): ``bottleneck + s * E_latent(r0)`` before the decoder.
    * ``"decoder"`` (DA-RCOT style): the latent of E is added to the bottleneck as above, and E's
      level-3, level-2 and level-1 features are added to the up-sampled decoder features entering
      decoder levels 3, 2 and 1 (just before their concatenation with the encoder skip).

    Every parameter takes part in the output, so DDP needs no ``find_unused_parameters``.

    Args:
        dim: width of level 1 of the U-Net.
        num_blocks: transformer blocks of levels 1, 2, 3 and the latent level.
        num_refinement_blocks: blocks after decoder level 1.
        heads: attention heads of the 4 levels (also used by the residual encoder).
        ffn_expansion_factor: GDFN hidden-width factor.
        bias: whether the convs have a bias.
        residual_dim: width of the residual encoder (default ``dim``).
        residual_blocks: blocks of the residual encoder's 4 levels (default ``num_blocks``).
        conditioning: ``"bottleneck"`` or ``"decoder"``.
        condition_scale: initial value of every injection scale (0.8 in RCOT).
        checkpointing: activation checkpointing of every transformer block (both passes and
            the residual encoder): about 1.3x the time for a fraction of the activation memory.

    Shape:
        ``(B, 3, H, W) -> (B, 3, H, W)``, any H, W (padded once to a multiple of 8, cropped back).

    Example:
        >>> tmap = TwoPassMap(dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
        ...                   heads=(1, 1, 1, 1), ffn_expansion_factor=2.0)
        >>> tmap(torch.rand(2, 3, 13, 21)).shape
        torch.Size([2, 3, 13, 21])
        >>> sorted(tmap.forward_with_intermediates(torch.rand(1, 3, 8, 8)))
        ['first_pass', 'output', 'residual']
    """

    channels = 3

    #: Inputs are padded to this multiple inside :meth:`forward` (read by
    #: :func:`rcot_lightning.shapes.size_multiple`: tiles and exports are cut on it).
    size_multiple: ClassVar[int] = PAD_MULTIPLE

    def __init__(
        self,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        residual_dim: int | None = None,
        residual_blocks: Sequence[int] | None = None,
        conditioning: str = "bottleneck",
        condition_scale: float = 0.8,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONING_MODES:
            raise ArgumentError(
                "conditioning", f"must be one of {CONDITIONING_MODES}, got {conditioning!r}"
            )
        if isinstance(condition_scale, bool) or not isinstance(condition_scale, int | float):
            raise ArgumentError("condition_scale", f"must be a number, got {condition_scale!r}")
        residual_dim = dim if residual_dim is None else residual_dim
        residual_blocks = num_blocks if residual_blocks is None else residual_blocks
        check_restormer_config(
            residual_dim,
            residual_blocks,
            heads,
            ffn_expansion_factor,
            dim_key="residual_dim",
            blocks_key="residual_blocks",
        )
        self.conditioning = conditioning
        self.restoration = RestormerUNet(
            self.channels,
            self.channels,
            dim,
            num_blocks,
            num_refinement_blocks,
            heads,
            ffn_expansion_factor,
            bias,
        )
        self.residual_encoder = RestormerEncoder(
            self.channels, residual_dim, residual_blocks, heads, ffn_expansion_factor, bias
        )
        # Injection k (deepest first) carries width 2**(3-k) times the level-1 width.
        num_injections = 1 if conditioning == "bottleneck" else 4
        widths = [2 ** (3 - k) for k in range(num_injections)]
        self.condition_scales = nn.ParameterList(
            nn.Parameter(torch.tensor(float(condition_scale))) for _ in widths
        )
        self.condition_projections = nn.ModuleList(
            nn.Identity()
            if residual_dim == dim
            else nn.Conv2d(residual_dim * m, dim * m, kernel_size=1, bias=bias)
            for m in widths
        )
        set_checkpointing(self, checkpointing)

    def _conditions(
        self, skips: tuple[Tensor, Tensor, Tensor], bottleneck: Tensor
    ) -> list[Tensor | None]:
        features = [bottleneck, skips[2], skips[1], skips[0]][: len(self.condition_scales)]
        conditions: list[Tensor | None] = [
            scale * project(f)
            for f, scale, project in zip(
                features, self.condition_scales, self.condition_projections, strict=True
            )
        ]
        return conditions + [None] * (4 - len(conditions))

    def forward_with_intermediates(self, y: Tensor) -> dict[str, Tensor]:
        """Run both passes and return what each produced.

        Args:
            y: degraded images ``(B, 3, H, W)``.

        Returns:
            ``{"first_pass": G(y), "residual": y - G(y), "output": T(y)}``, each ``(B, 3, H, W)``.
        """
        check_images(y, "y", self.channels)
        padded, size = pad_to_multiple(y, self.size_multiple)
        skips, bottleneck, first_pass = self._first_pass(padded)
        residual = padded - first_pass
        conditions = self._conditions(*self.residual_encoder(residual))
        output = padded + self.restoration.decoder(skips, bottleneck, conditions)
        return {
            "first_pass": crop_to(first_pass, size),
            "residual": crop_to(residual, size),
            "output": crop_to(output, size),
        }

    def _first_pass(self, padded: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, Tensor]:
        """The unconditioned pass on a padded batch: the encoder's skips and bottleneck (the
        second pass reuses them) and ``G(y)``."""
        unet = self.restoration
        skips, bottleneck = unet.encoder(padded)
        return skips, bottleneck, padded + unet.decoder(skips, bottleneck)

    def first_pass_residual(self, y: Tensor) -> Tensor:
        """``y - G(y)`` ``(B, 3, H, W)``, the residual the second pass is conditioned on, without
        running the residual encoder or the second pass (what the degradation detector reads)."""
        check_images(y, "y", self.channels)
        padded, size = pad_to_multiple(y, self.size_multiple)
        return crop_to(padded - self._first_pass(padded)[2], size)

    def forward(self, y: Tensor) -> Tensor:
        """Restore ``y`` ``(B, 3, H, W)``: returns ``T(y)`` ``(B, 3, H, W)``."""
        return self.forward_with_intermediates(y)["output"]
