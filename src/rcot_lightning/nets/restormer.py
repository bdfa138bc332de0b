"""Restormer building blocks and a configurable 4-level Restormer U-Net (the map G of RCOT).

Architecture facts (Zamir et al., CVPR 2022), written from the paper's description:

* a layer norm over the channel axis of every pixel (with a learnable bias);
* MDTA, multi-Dconv-head transposed attention: 1x1 then depth-wise 3x3 convs make Q, K, V, and
  attention is computed across channels (a ``(C/h, C/h)`` map per head) rather than across pixels,
  so its cost is linear in H*W; Q and K are L2-normalised and scaled by a learnable temperature;
* GDFN, the gated-Dconv feed-forward network: 1x1 expansion to two branches, depth-wise 3x3,
  GELU of one branch gates the other, 1x1 projection back;
* a 4-level encoder/decoder with pixel-(un)shuffle resampling, 1x1 channel reduction after the
  skip concatenation at levels 3 and 2, a level-1 decoder and refinement stage at ``2 * dim``,
  a 3x3 output conv and a global residual ``x + net(x)``.

The U-Net is split into :class:`RestormerEncoder` and :class:`RestormerDecoder` so that the
two-pass map (:mod:`rcot_lightning.nets.two_pass`) runs the encoder of ``y`` once and the decoder
twice, and can use a second encoder on the transport residual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from rcot_lightning.errors import ArgumentError
from rcot_lightning.shapes import check_images, crop_to, pad_to_multiple
from rcot_lightning.values import at_least, int_tuple

__all__ = [
    "ChannelLayerNorm",
    "GatedDconvFeedForward",
    "RestormerDecoder",
    "RestormerEncoder",
    "RestormerUNet",
    "TransformerBlock",
    "TransformerStage",
    "TransposedAttention",
    "set_checkpointing",
]

#: Number of 2x down-samplings of the U-Net; inputs are padded to a multiple of ``2**3``.
NUM_DOWNSAMPLINGS = 3
#: The size multiple the U-Net needs; the maps declare it as ``size_multiple`` and pad to it.
PAD_MULTIPLE = 2**NUM_DOWNSAMPLINGS

Conditions = Sequence[Tensor | None]


def check_restormer_config(
    dim: int,
    num_blocks: Sequence[int],
    heads: Sequence[int],
    ffn_expansion_factor: float,
    *,
    dim_key: str = "dim",
    blocks_key: str = "num_blocks",
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validate the size arguments shared by the encoder, decoder and U-Net.

    Args:
        dim: width of level 1.
        num_blocks: blocks of the 4 levels.
        heads: attention heads of the 4 levels.
        ffn_expansion_factor: GDFN hidden-width factor.
        dim_key: config key of ``dim`` named in error messages.
        blocks_key: config key of ``num_blocks`` named in error messages.

    Returns:
        ``(num_blocks, heads)`` as tuples of 4 integers.

    Raises:
        RCOTError: when a value is out of range or ``heads[i]`` does not divide the width
            ``dim * 2**i`` of level ``i``.
    """
    at_least(dim, dim_key, 1)
    blocks = int_tuple(num_blocks, blocks_key, 4, minimum=0)
    head_counts = int_tuple(heads, "heads", 4, minimum=1)
    for level, h in enumerate(head_counts):
        width = dim * 2**level
        if width % h:
            raise ArgumentError(
                "heads",
                f"[{level}]={h} must divide the level-{level + 1} width "
                f"{dim_key}*2**{level}={width}; change heads or {dim_key}",
            )
    if isinstance(ffn_expansion_factor, bool) or not isinstance(ffn_expansion_factor, int | float):
        raise ArgumentError(
            "ffn_expansion_factor", f"must be a number, got {ffn_expansion_factor!r}"
        )
    if int(dim * ffn_expansion_factor) < 1:
        raise ArgumentError(
            "ffn_expansion_factor",
            f"={ffn_expansion_factor} gives an empty feed-forward layer at "
            f"{dim_key}={dim}; use a larger factor",
        )
    return blocks, head_counts


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of every pixel, with learnable scale and bias.

    ``y = (x - mean_C(x)) / sqrt(var_C(x) + eps) * weight + bias`` (biased variance).

    Args:
        channels: C.
        eps: added to the variance.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Example:
        >>> ChannelLayerNorm(4)(torch.randn(2, 4, 5, 6)).shape
        torch.Size([2, 4, 5, 6])
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # The fused layer_norm kernel on a channels-last view is faster than mean/var by hand.
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class TransposedAttention(nn.Module):
    """MDTA: multi-Dconv-head attention across channels, linear in the number of pixels.

    Per head, ``softmax(norm(Q) norm(K)^T * temperature) V`` with Q, K, V of shape
    ``(C/heads, H*W)``; Q, K, V come from a 1x1 conv followed by a depth-wise 3x3 conv.

    Args:
        dim: channels C.
        heads: number of heads, dividing C.
        bias: whether the convs have a bias.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Example:
        >>> TransposedAttention(8, heads=2)(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, dim: int, heads: int, bias: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias
        )
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.unbind(1)
        # norm(q) norm(k)^T without normalising the full-size Q and K: the (C/heads)^2 product
        # q k^T is divided by the outer product of their row norms, read off the diagonals of
        # q q^T and k k^T (two more small matmuls). The same numbers as F.normalize (norms
        # clamped at 1e-12), about 10 % less time per tile on a CPU: Q and K are strided
        # views here, and a norm along a strided dimension is several times slower than a
        # matmul over it. In float32 even under autocast: a half-precision sum of h*w squares
        # can overflow (float64 stays float64).
        with torch.autocast(x.device.type, enabled=False):
            dtype = torch.promote_types(q.dtype, torch.float32)
            q32, k32 = q.to(dtype), k.to(dtype)
            eye = torch.eye(q.shape[-2], device=x.device, dtype=dtype)
            q_norm = ((q32 @ q32.transpose(-2, -1)) * eye).sum(-1).sqrt().clamp_min(1e-12)
            k_norm = ((k32 @ k32.transpose(-2, -1)) * eye).sum(-1).sqrt().clamp_min(1e-12)
            cosine = (q32 @ k32.transpose(-2, -1)) / (q_norm.unsqueeze(-1) * k_norm.unsqueeze(-2))
            attn = (cosine * self.temperature).softmax(dim=-1)
        return self.project_out((attn.to(v.dtype) @ v).reshape(b, c, h, w))


class GatedDconvFeedForward(nn.Module):
    """GDFN: ``W_out(GELU(dw(W_1 x)) * dw(W_2 x))`` with hidden width ``int(C * expansion)``.

    Args:
        dim: channels C.
        expansion: hidden-width factor (2.66 in Restormer).
        bias: whether the convs have a bias.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Example:
        >>> GatedDconvFeedForward(8, 2.0)(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, dim: int, expansion: float, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias
        )
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    """Pre-norm Restormer block: ``x + MDTA(LN(x))`` then ``x + GDFN(LN(x))``.

    Args:
        dim: channels C.
        heads: attention heads, dividing C.
        ffn_expansion_factor: GDFN hidden-width factor.
        bias: whether the convs have a bias (the layer norms always have one).

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Example:
        >>> TransformerBlock(8, heads=2, ffn_expansion_factor=2.0)(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, dim: int, heads: int, ffn_expansion_factor: float, bias: bool = False):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = TransposedAttention(dim, heads, bias)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GatedDconvFeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TransformerStage(nn.Sequential):
    """A chain of :class:`TransformerBlock`, optionally under activation checkpointing.

    With ``checkpointing`` set and gradients enabled, each block keeps only its input for the
    backward pass and recomputes its inside (``torch.utils.checkpoint``, non-reentrant, so
    autocast and ``torch.autograd.grad`` work through it): the map's activations shrink to one
    tensor per block for about one extra forward pass. The weights and their names are those of
    a plain ``nn.Sequential`` either way, so checkpoints load with the flag on or off.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Example:
        >>> stage = TransformerStage(TransformerBlock(8, 2, 2.0), TransformerBlock(8, 2, 2.0))
        >>> stage.checkpointing = True
        >>> stage(torch.randn(1, 8, 4, 4, requires_grad=True)).shape
        torch.Size([1, 8, 4, 4])
    """

    checkpointing: bool = False

    def forward(self, x: Tensor) -> Tensor:
        if not (self.checkpointing and torch.is_grad_enabled()):
            return super().forward(x)
        for block in self:
            x = checkpoint(block, x, use_reentrant=False)
        return x


def set_checkpointing(module: nn.Module, enabled: bool) -> None:
    """Turn activation checkpointing of every :class:`TransformerStage` in ``module`` on or off."""
    if not isinstance(enabled, bool):
        raise ArgumentError("checkpointing", f"must be true or false, got {enabled!r}")
    for stage in module.modules():
        if isinstance(stage, TransformerStage):
            stage.checkpointing = enabled


def _stage(dim: int, blocks: int, heads: int, ffn: float, bias: bool) -> TransformerStage:
    return TransformerStage(*(TransformerBlock(dim, heads, ffn, bias) for _ in range(blocks)))


def _downsample(dim: int) -> nn.Sequential:
    # Halving the channels before PixelUnshuffle(2) makes the next level 2x wider; bias-free as
    # in Restormer regardless of the `bias` setting.
    return nn.Sequential(
        nn.Conv2d(dim, dim // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2)
    )


def _upsample(dim: int) -> nn.Sequential:
    # Doubling the channels before PixelShuffle(2) makes the next level 2x narrower.
    return nn.Sequential(
        nn.Conv2d(dim, dim * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2)
    )


class RestormerEncoder(nn.Module):
    """Overlapped 3x3 patch embedding, three encoder levels and the latent level.

    Level ``i`` (0-based) works at width ``dim * 2**i`` and resolution ``H / 2**i``; each of the
    first three levels is followed by a down-sampling (3x3 conv to half the channels, then
    PixelUnshuffle(2)).

    Args:
        in_channels: image channels.
        dim: width of level 1.
        num_blocks: transformer blocks of the 4 levels (the last is the latent level).
        heads: attention heads of the 4 levels.
        ffn_expansion_factor: GDFN hidden-width factor.
        bias: whether the convs have a bias.

    Shape:
        ``(B, in_channels, H, W)`` with H, W multiples of 8 ->
        skips ``((B, dim, H, W), (B, 2dim, H/2, W/2), (B, 4dim, H/4, W/4))`` and bottleneck
        ``(B, 8dim, H/8, W/8)``.

    Example:
        >>> enc = RestormerEncoder(3, 4, (1, 1, 1, 1), (1, 1, 1, 1), 2.0)
        >>> skips, bottleneck = enc(torch.randn(1, 3, 16, 16))
        >>> [tuple(s.shape) for s in skips], tuple(bottleneck.shape)
        ([(1, 4, 16, 16), (1, 8, 8, 8), (1, 16, 4, 4)], (1, 32, 2, 2))
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        num_blocks: Sequence[int],
        heads: Sequence[int],
        ffn_expansion_factor: float,
        bias: bool = False,
    ) -> None:
        super().__init__()
        at_least(in_channels, "in_channels", 1)
        blocks, head_counts = check_restormer_config(dim, num_blocks, heads, ffn_expansion_factor)
        f = ffn_expansion_factor
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=bias)
        self.levels = nn.ModuleList(
            _stage(dim * 2**i, blocks[i], head_counts[i], f, bias) for i in range(3)
        )
        self.downs = nn.ModuleList(_downsample(dim * 2**i) for i in range(3))
        self.latent = _stage(dim * 8, blocks[3], head_counts[3], f, bias)

    def forward(self, x: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
        skips = []
        h = self.patch_embed(x)
        for level, down in zip(self.levels, self.downs, strict=True):
            h = level(h)
            skips.append(h)
            h = down(h)
        return (skips[0], skips[1], skips[2]), self.latent(h)


class RestormerDecoder(nn.Module):
    """The decoder half of the Restormer U-Net, with optional additive conditioning.

    From the bottleneck: up-sample (3x3 conv to twice the channels, PixelShuffle(2)), concatenate
    the encoder skip, reduce channels with a 1x1 conv (levels 3 and 2 only), transformer blocks;
    level 1 and the refinement blocks stay at ``2 * dim``; a 3x3 conv maps to the output channels.

    ``conditions`` (deepest first, entries may be ``None``) are added: ``conditions[0]`` to the
    bottleneck ``(B, 8dim, H/8, W/8)``, ``conditions[1]`` to the up-sampled features entering level
    3 ``(B, 4dim, H/4, W/4)``, ``conditions[2]`` to those entering level 2 ``(B, 2dim, H/2, W/2)``,
    ``conditions[3]`` to those entering level 1 ``(B, dim, H, W)`` (each before the concatenation
    with the skip).

    Args:
        out_channels: channels of the output.
        dim: width of level 1 of the matching encoder.
        num_blocks: transformer blocks of the 4 levels (the last, the latent, is not used here).
        num_refinement_blocks: blocks after level 1.
        heads: attention heads of the 4 levels.
        ffn_expansion_factor: GDFN hidden-width factor.
        bias: whether the convs have a bias.

    Shape:
        skips and bottleneck as returned by :class:`RestormerEncoder` ->
        ``(B, out_channels, H, W)`` (no global skip here).

    Example:
        >>> enc = RestormerEncoder(3, 4, (1, 1, 1, 1), (1, 1, 1, 1), 2.0)
        >>> dec = RestormerDecoder(3, 4, (1, 1, 1, 1), 1, (1, 1, 1, 1), 2.0)
        >>> dec(*enc(torch.randn(1, 3, 16, 16))).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        out_channels: int,
        dim: int,
        num_blocks: Sequence[int],
        num_refinement_blocks: int,
        heads: Sequence[int],
        ffn_expansion_factor: float,
        bias: bool = False,
    ) -> None:
        super().__init__()
        at_least(out_channels, "out_channels", 1)
        at_least(num_refinement_blocks, "num_refinement_blocks", 0)
        blocks, head_counts = check_restormer_config(dim, num_blocks, heads, ffn_expansion_factor)
        f = ffn_expansion_factor
        self.up4_3 = _upsample(dim * 8)
        self.reduce3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.level3 = _stage(dim * 4, blocks[2], head_counts[2], f, bias)
        self.up3_2 = _upsample(dim * 4)
        self.reduce2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.level2 = _stage(dim * 2, blocks[1], head_counts[1], f, bias)
        self.up2_1 = _upsample(dim * 2)
        # Restormer keeps level 1 at the concatenated width 2*dim: no reduction at full resolution.
        self.level1 = _stage(dim * 2, blocks[0], head_counts[0], f, bias)
        self.refinement = _stage(dim * 2, num_refinement_blocks, head_counts[0], f, bias)
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(
        self,
        skips: Sequence[Tensor],
        bottleneck: Tensor,
        conditions: Conditions | None = None,
    ) -> Tensor:
        if conditions is None:
            conditions = (None, None, None, None)
        elif len(conditions) != 4:
            raise ArgumentError(
                "conditions",
                f"must hold 4 entries (bottleneck, level 3, 2, 1), got {len(conditions)}",
            )
        c_latent, c3, c2, c1 = conditions
        h = bottleneck if c_latent is None else bottleneck + c_latent
        h = self.up4_3(h)
        h = h if c3 is None else h + c3
        h = self.level3(self.reduce3(torch.cat([h, skips[2]], dim=1)))
        h = self.up3_2(h)
        h = h if c2 is None else h + c2
        h = self.level2(self.reduce2(torch.cat([h, skips[1]], dim=1)))
        h = self.up2_1(h)
        h = h if c1 is None else h + c1
        h = self.level1(torch.cat([h, skips[0]], dim=1))
        return self.output(self.refinement(h))


class RestormerUNet(nn.Module):
    """The 4-level Restormer U-Net with a global residual: ``forward(x) = x + net(x)``.

    Paper size (the defaults): dim 48, blocks (4, 6, 6, 8), 4 refinement blocks, heads
    (1, 2, 4, 8), GDFN factor 2.66, bias-free convs: about 26.1 M parameters.

    Inputs of any H, W are reflect-padded to a multiple of 8 and the output is cropped back.
    :meth:`encode` and :meth:`decode` expose the two halves on already padded inputs so that a
    caller (the two-pass map) can reuse the encoder output.

    Args:
        in_channels: image channels.
        out_channels: output channels; the global residual is added only when it equals
            ``in_channels`` (otherwise ``forward(x) = net(x)``).
        dim: width of level 1 (levels 2, 3, latent are 2x, 4x, 8x wider).
        num_blocks: transformer blocks of levels 1, 2, 3 and the latent level.
        num_refinement_blocks: blocks after decoder level 1.
        heads: attention heads of the 4 levels; ``heads[i]`` must divide ``dim * 2**i``.
        ffn_expansion_factor: GDFN hidden-width factor.
        bias: whether the convs have a bias (the layer norms always have one).
        checkpointing: recompute each transformer block in the backward pass instead of
            keeping its activations (:class:`TransformerStage`); less memory, more time.

    Shape:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.

    Example:
        >>> net = RestormerUNet(dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
        ...                     heads=(1, 1, 1, 1), ffn_expansion_factor=2.0)
        >>> net(torch.rand(2, 3, 13, 21)).shape
        torch.Size([2, 3, 13, 21])
    """

    #: Inputs are padded to this multiple inside :meth:`forward` (read by
    #: :func:`rcot_lightning.shapes.size_multiple`: tiles and exports are cut on it).
    size_multiple: ClassVar[int] = PAD_MULTIPLE

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.encoder = RestormerEncoder(
            in_channels, dim, num_blocks, heads, ffn_expansion_factor, bias
        )
        self.decoder = RestormerDecoder(
            out_channels, dim, num_blocks, num_refinement_blocks, heads, ffn_expansion_factor, bias
        )
        set_checkpointing(self, checkpointing)

    def encode(self, x: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
        """Run the encoder on a padded batch.

        Args:
            x: images ``(B, in_channels, H, W)``, H and W multiples of 8.

        Returns:
            ``(skips, bottleneck)``: skips ``((B, dim, H, W), (B, 2dim, H/2, W/2),
            (B, 4dim, H/4, W/4))`` and bottleneck ``(B, 8dim, H/8, W/8)``.
        """
        check_images(x, "x", self.in_channels)
        if x.shape[-2] % PAD_MULTIPLE or x.shape[-1] % PAD_MULTIPLE:
            raise ArgumentError(
                "x",
                f"must have H and W multiples of {PAD_MULTIPLE} for encode, got "
                f"{tuple(x.shape[-2:])}; use forward (which pads) or "
                "rcot_lightning.shapes.pad_to_multiple",
            )
        return self.encoder(x)

    def decode(
        self,
        skips: Sequence[Tensor],
        bottleneck: Tensor,
        conditions: Conditions | None = None,
    ) -> Tensor:
        """Run the decoder; ``x + decode(*encode(x))`` is the restored (padded) image.

        Args:
            skips: the three encoder skips from :meth:`encode`.
            bottleneck: ``(B, 8dim, H/8, W/8)`` from :meth:`encode`.
            conditions: optional additive features, deepest first (see
                :class:`RestormerDecoder`).

        Returns:
            ``net(x)`` of shape ``(B, out_channels, H, W)``, without the global residual.
        """
        return self.decoder(skips, bottleneck, conditions)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, "x", self.in_channels)
        padded, size = pad_to_multiple(x, self.size_multiple)
        out = self.decoder(*self.encoder(padded))
        if self.out_channels == self.in_channels:
            out = padded + out
        return crop_to(out, size)
