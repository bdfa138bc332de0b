"""Image-batch shapes, torch only: the checks every layer makes, and padding to a size multiple.

One place for both, so that every layer words a wrong shape the same way and pads the same way:

* :func:`check_images` / :func:`check_same_shape`: ``TypeError`` for a non-tensor, ``ValueError``
  for a wrong shape; messages name the argument (entry points add the config key).
* :func:`pad_to_multiple` / :func:`crop_to`: reflect-pad the bottom and right of a batch to a
  multiple and crop back. Networks that need a multiple declare it as ``size_multiple`` and pad
  themselves; :func:`size_multiple` reads that declaration (1 for anything else).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from rcot_lightning.errors import ArgumentError

__all__ = [
    "as_rgb",
    "check_images",
    "check_same_shape",
    "crop_to",
    "pad_to_multiple",
    "size_multiple",
]


def check_images(
    x: object,
    name: str = "x",
    channels: int | Collection[int] | None = None,
    floating: bool = False,
) -> None:
    """Raise unless ``x`` is an image batch ``(B, C, H, W)``.

    Args:
        x: the value to check.
        name: the argument's name, used in the message.
        channels: the allowed C (one number or several); None allows any.
        floating: require a floating-point dtype.

    Raises:
        TypeError: ``x`` is not a tensor.
        ArgumentError: wrong number of dimensions, channels or dtype (a ValueError).

    Example:
        >>> import torch
        >>> check_images(torch.zeros(2, 3, 8, 8), "y", channels=3)
        >>> check_images(torch.zeros(3, 8, 8), "y", channels=3)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: y must have shape (B, 3, H, W), got (3, 8, 8)
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    allowed: Collection[int] | None = (channels,) if isinstance(channels, int) else channels
    if x.ndim != 4 or (allowed is not None and x.shape[1] not in allowed):
        c = "C" if allowed is None else " or ".join(str(c) for c in allowed)
        raise ArgumentError(name, f"must have shape (B, {c}, H, W), got {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise ArgumentError(name, f"must be a floating-point tensor, got {x.dtype}")


def check_same_shape(name_a: str, a: object, name_b: str, b: object) -> None:
    """:func:`check_images` on both, then require equal shapes.

    Example:
        >>> import torch
        >>> check_same_shape("pred", torch.zeros(1, 3, 4, 4), "target", torch.zeros(1, 3, 4, 5))
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: pred and target must have the same shape, got pred shape (1, 3, 4, 4) and target shape (1, 3, 4, 5)
    """  # noqa: E501
    check_images(a, name_a)
    check_images(b, name_b)
    assert isinstance(a, Tensor) and isinstance(b, Tensor)
    if a.shape != b.shape:
        raise ArgumentError(
            None,
            f"{name_a} and {name_b} must have the same shape, got {name_a} shape "
            f"{tuple(a.shape)} and {name_b} shape {tuple(b.shape)}",
        )


def as_rgb(x: Tensor, name: str = "images") -> Tensor:
    """Images ``(B, 1 or 3, H, W)`` as RGB: one channel is repeated (a view, no copy).

    Example:
        >>> import torch
        >>> as_rgb(torch.zeros(2, 1, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """
    check_images(x, name, channels=(1, 3))
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad the bottom and right of ``x`` so that H and W are multiples of ``multiple``.

    Reflection keeps the image statistics at the border (zeros would look like a dark frame to a
    network and enter its attention statistics); a side too short to reflect (pad >= side) is
    replicated instead.

    Args:
        x: images ``(B, C, H, W)``.
        multiple: the size multiple, ``>= 1``.

    Returns:
        The padded batch ``(B, C, H', W')`` and the original ``(H, W)`` for :func:`crop_to`.

    Example:
        >>> import torch
        >>> padded, size = pad_to_multiple(torch.zeros(1, 3, 37, 53), 8)
        >>> padded.shape, size
        (torch.Size([1, 3, 40, 56]), (37, 53))
    """
    check_images(x)
    if multiple < 1:
        raise ArgumentError("multiple", f"must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size`` of ``(B, C, H', W')``."""
    return x[..., : size[0], : size[1]]


def size_multiple(net: Any) -> int:
    """The size multiple ``net`` declares (``net.size_multiple``), looking inside wrappers.

    Wrappers that keep the network as ``.module`` (``AveragedModel``, DDP) or ``._orig_mod``
    (``torch.compile``) are looked through; anything that declares nothing gets 1.

    Example:
        >>> from rcot_lightning.nets import TwoPassMap
        >>> tmap = TwoPassMap(dim=4, num_blocks=(1, 1, 1, 1), heads=(1, 1, 1, 1))
        >>> size_multiple(tmap), size_multiple(lambda t: t)
        (8, 1)
    """
    seen: set[int] = set()
    while net is not None and id(net) not in seen:
        seen.add(id(net))
        declared = getattr(type(net), "size_multiple", None)
        if isinstance(declared, int):
            return declared
        inner = getattr(net, "_modules", {}) or {}
        net = inner.get("module") or inner.get("_orig_mod")
    return 1
