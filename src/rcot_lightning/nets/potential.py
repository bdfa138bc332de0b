"""The Kantorovich potential phi (the WGAN-GP critic of RCOT, reference §4), size-agnostic.

The trunk follows the reference's layer shapes: a 5x5 first conv, then 3x3 convs alternating with
4x4 stride-2 convs, the last four convs without bias, LeakyReLU(0.2), no normalisation (a gradient
penalty must see per-sample gradients, which batch statistics would mix). The reference ends in
Linear layers sized by the training patch; here global average pooling and one Linear give a
scalar for any input size. He init by default (the reference's N(0, 0.02) is ``init="normal"``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from rcot_lightning.errors import ArgumentError
from rcot_lightning.shapes import check_images
from rcot_lightning.values import is_integer, positive_int

__all__ = ["Potential"]


class Potential(nn.Module):
    """Convolutional potential phi: images to one scalar score each.

    ``len(channels)`` convs, each followed by LeakyReLU; conv ``i`` has ``channels[i]``
    outputs and stride 2 when ``i`` is odd, so there are ``len(channels) // 2`` down-samplings
    (five for the reference's ten convs). Then the mean over H, W and ``Linear(channels[-1], 1)``.
    With ``layout="reference"`` the first conv is 5x5, the stride-2 convs are 4x4 and the last
    four convs have no bias, as in the authors' critic; ``layout="uniform"`` uses 3x3 convs with
    bias everywhere (this library's layout before 0.2, kept to load older checkpoints).
    Built from twice-differentiable ops, so ``torch.autograd.grad(..., create_graph=True)`` works
    for the gradient penalty.

    Args:
        in_channels: image channels.
        channels: output channels of the convs.
        negative_slope: LeakyReLU slope.
        init_std: standard deviation of the conv weights when ``init="normal"``.
        init: ``"normal"``: N(0, init_std) as the reference (DCGAN style); ``"kaiming"``: He
            normal init for the LeakyReLU slope, which keeps signal and input gradients at
            order 1 through the trunk. With the reference init the input-gradient norm starts
            near 1e-4, so the penalty sits at about 1 and the potential is nearly constant for
            hundreds of iterations; He init starts it near 0.1. Biases start at 0 either way.
        layout: ``"reference"`` or ``"uniform"`` kernel sizes and biases (see above).

    Shape:
        ``(B, in_channels, H, W) -> (B,)``, H and W at least ``2 ** (len(channels) // 2)``.

    Example:
        >>> import torch
        >>> phi = Potential(channels=(4, 4, 8, 8))
        >>> phi(torch.rand(2, 3, 16, 24)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 64, 128, 128, 256, 256, 512, 512, 512, 512),
        negative_slope: float = 0.2,
        init_std: float = 0.02,
        init: str = "kaiming",
        layout: str = "reference",
    ) -> None:
        super().__init__()
        positive_int(in_channels, "in_channels")
        if (
            not isinstance(channels, Sequence)
            or isinstance(channels, str)
            or len(channels) == 0
            or not all(is_integer(c) and c >= 1 for c in channels)
        ):
            raise ArgumentError(
                "channels", f"must be a non-empty sequence of positive integers, got {channels!r}"
            )
        if not init_std > 0:
            raise ArgumentError("init_std", f"must be positive, got {init_std!r}")
        if init not in ("normal", "kaiming"):
            raise ArgumentError("init", f"must be 'normal' or 'kaiming', got {init!r}")
        if layout not in ("reference", "uniform"):
            raise ArgumentError("layout", f"must be 'reference' or 'uniform', got {layout!r}")
        self.in_channels = in_channels
        self.num_downsamplings = len(channels) // 2
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(channels):
            kernel, bias = _conv_shape(layout, i, len(channels))
            # padding (kernel - 1) // 2 keeps the size at stride 1 and halves it (floor) at 2
            conv = nn.Conv2d(previous, width, kernel, 1 + i % 2, (kernel - 1) // 2, bias=bias)
            if init == "kaiming":
                nn.init.kaiming_normal_(conv.weight, a=negative_slope, nonlinearity="leaky_relu")
            else:
                nn.init.normal_(conv.weight, mean=0.0, std=init_std)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            layers += [conv, nn.LeakyReLU(negative_slope)]
            previous = width
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(previous, 1)

    @property
    def min_size(self) -> int:
        """Smallest accepted H and W: one pixel left after the down-samplings."""
        return 2**self.num_downsamplings

    def forward(self, x: Tensor) -> Tensor:
        """Score images ``(B, in_channels, H, W)``; returns ``(B,)``."""
        check_images(x, "x", self.in_channels)
        if min(x.shape[-2:]) < self.min_size:
            raise ArgumentError(
                "x",
                f"must be at least {self.min_size}x{self.min_size} for "
                f"{self.num_downsamplings} down-samplings, got {tuple(x.shape[-2:])}",
            )
        return self.head(self.trunk(x).mean(dim=(-2, -1))).squeeze(-1)


def _conv_shape(layout: str, index: int, count: int) -> tuple[int, bool]:
    """Kernel size and bias of conv ``index`` of ``count`` in a layout."""
    if layout == "uniform":
        return 3, True
    kernel = 5 if index == 0 else (4 if index % 2 else 3)
    return kernel, index < count - 4
