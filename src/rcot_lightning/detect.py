"""Which degradation an image shows, read from the map's own transport residual.

RCOT's two-pass map restores ``y`` once, takes the residual ``r0 = y - G(y)`` of that first pass
and conditions its second pass on an embedding of ``r0``: the residual is meant to be a
degradation-specific cue. A :class:`DegradationDetector` tests that and puts it to use: a linear
(multinomial logistic) classifier on features of ``r0`` that names the degradation and how sure
it is. ``rcot-restore`` prints that line for every image when its model ships a detector
(``allinone-blind``), so a user can see why an image came out as it did.

Features (``FEATURES``), each a fixed-length vector per crop, whatever the crop's size:

* ``residual_spectrum``: the log power spectrum of the grey residual (orthonormal FFT, pooled
  into an ``8 x 8`` grid of frequency cells, centred), and the residual's per-channel mean and
  log standard deviation (haze and low light shift colour and brightness; noise and rain do not);
* ``residual_embedding``: the residual encoder's features (what the second pass is conditioned
  on), averaged over space at each of its four levels (two-pass maps only);
* ``input_spectrum``: the same spectrum and statistics of the degraded input itself: the control
  that says what the residual adds over looking at the image.

``benchmarks/probe.py`` fits one detector per feature set on training crops and scores it on
crops of the held-out photos; :func:`rcot_lightning.pretrained.load_detector` reads the one a
bundled model ships.

Example:
    >>> import torch
    >>> features = torch.cat([torch.randn(20, 4) + 3, torch.randn(20, 4) - 3])
    >>> labels = torch.tensor([0] * 20 + [1] * 20)
    >>> detector = DegradationDetector.fit(features, labels, ("rain", "haze"), "input_spectrum")
    >>> detector.probabilities(torch.full((1, 4), 3.0)).argmax().item()
    0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rcot_lightning.errors import RCOTError

__all__ = [
    "FEATURES",
    "DegradationDetector",
    "Detection",
    "crop_grid",
    "embedding_features",
    "feature_sets",
    "features",
    "first_pass_residual",
    "spectrum_features",
]

#: The feature sets a detector can read (module docstring).
FEATURES = ("residual_spectrum", "residual_embedding", "input_spectrum")
#: Side of the frequency grid the log power spectrum is pooled into.
SPECTRUM_CELLS = 8


def first_pass_residual(net: nn.Module, y: Tensor) -> Tensor:
    """``y - G(y)``: the residual the two-pass map conditions on (its first pass); for any other
    map, its whole residual ``y - T(y)``."""
    first_pass = getattr(net, "first_pass_residual", None)
    if callable(first_pass):  # the first pass alone: half the map's work
        residual: Tensor = first_pass(y)
        return residual
    return y - net(y)


def spectrum_features(x: Tensor) -> Tensor:
    """``(N, 3, H, W)`` -> ``(N, 70)``: the log power spectrum of the grey image pooled into
    ``8 x 8`` centred frequency cells, then the per-channel mean and log standard deviation."""
    grey = x.mean(1)
    power = torch.fft.fftshift(torch.fft.fft2(grey, norm="ortho").abs().square(), dim=(-2, -1))
    cells = F.adaptive_avg_pool2d(power[:, None], SPECTRUM_CELLS).flatten(1)
    stats = torch.cat([x.mean((-2, -1)), x.std((-2, -1)).clamp_min(1e-6).log()], 1)
    return torch.cat([cells.clamp_min(1e-12).log(), stats], 1)


def embedding_features(net: nn.Module, residual: Tensor) -> Tensor:
    """The two-pass map's residual encoder on ``residual``, each of its four levels averaged over
    space and concatenated: ``(N, 15 * dim)``."""
    encoder = getattr(net, "residual_encoder", None)
    if not isinstance(encoder, nn.Module):
        raise RCOTError(
            "residual_embedding needs a two-pass (TRC) map with a residual encoder; use "
            "residual_spectrum for this map"
        )
    skips, bottleneck = encoder(residual)
    return torch.cat([f.mean((-2, -1)) for f in (*skips, bottleneck)], 1)


@torch.no_grad()
def feature_sets(net: nn.Module | None, y: Tensor, kinds: Sequence[str]) -> dict[str, Tensor]:
    """The ``kinds`` features (:data:`FEATURES`) of the crops ``y`` ``(N, 3, H, W)``, each
    ``(N, F)``, from one run of the map's first pass. ``net`` (the map) is unused for
    ``input_spectrum`` alone."""
    unknown = [k for k in kinds if k not in FEATURES]
    if unknown:
        raise RCOTError(f"features: unknown kind {unknown[0]!r}; known: {', '.join(FEATURES)}")
    out = {}
    if "input_spectrum" in kinds:
        out["input_spectrum"] = spectrum_features(y)
    residual_kinds = [k for k in kinds if k != "input_spectrum"]
    if residual_kinds:
        if net is None:
            raise RCOTError(f"{residual_kinds[0]} features need the map")
        residual = first_pass_residual(net, y)
        if "residual_spectrum" in kinds:
            out["residual_spectrum"] = spectrum_features(residual)
        if "residual_embedding" in kinds:
            out["residual_embedding"] = embedding_features(net, residual)
    return out


def features(net: nn.Module | None, y: Tensor, kind: str) -> Tensor:
    """The ``kind`` features of the crops ``y``: :func:`feature_sets` for one kind."""
    return feature_sets(net, y, [kind])[kind]


def crop_grid(image: Tensor, size: int, count: int) -> Tensor:
    """Up to ``count`` crops ``size`` x ``size`` of ``image`` ``(1, 3, H, W)`` on an even grid
    (``k x k`` with ``k * k <= count``), stacked ``(N, 3, size, size)``; the whole image when it
    is smaller than a crop."""
    h, w = image.shape[-2:]
    if h < size or w < size:
        return image
    k = max(1, int(count**0.5))
    tops = torch.linspace(0, h - size, k).round().long().tolist()
    lefts = torch.linspace(0, w - size, k).round().long().tolist()
    return torch.cat([image[..., t : t + size, x : x + size] for t in tops for x in lefts])


@dataclass(frozen=True)
class Detection:
    """What :meth:`DegradationDetector.detect` found: classes by probability, highest first."""

    ranked: tuple[tuple[str, float], ...]

    @property
    def name(self) -> str:
        return self.ranked[0][0]

    @property
    def confidence(self) -> float:
        return self.ranked[0][1]

    def line(self) -> str:
        """``rain (91 %; next: haze 5 %)``."""
        head = f"{self.name} ({self.confidence:.0%}"
        if len(self.ranked) > 1:
            head += f"; next: {self.ranked[1][0]} {self.ranked[1][1]:.0%}"
        return head.replace("%", " %") + ")"


@dataclass(frozen=True)
class DegradationDetector:
    """A linear classifier of standardised residual features: ``softmax(W (f - mean) / std + b)``.

    Attributes:
        classes: the names of the degradations it tells apart.
        kind: the features it reads (:data:`FEATURES`).
        mean, std: the training features' per-dimension statistics ``(F,)``.
        weight, bias: ``(C, F)`` and ``(C,)``.
        crop, crops: :meth:`detect` reads up to ``crops`` crops of ``crop`` pixels.
    """

    classes: tuple[str, ...]
    kind: str
    mean: Tensor
    std: Tensor
    weight: Tensor
    bias: Tensor
    crop: int = 96
    crops: int = 9

    @classmethod
    def fit(
        cls,
        features: Tensor,
        labels: Tensor,
        classes: Sequence[str],
        kind: str,
        l2: float = 1e-3,
        steps: int = 200,
        **kwargs: Any,
    ) -> DegradationDetector:
        """Fit by full-batch L-BFGS on the mean cross-entropy plus ``l2 * |W|^2``."""
        if kind not in FEATURES:
            raise RCOTError(f"kind: unknown features {kind!r}; known: {', '.join(FEATURES)}")
        x = features.double()
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        z = (x - mean) / std
        weight = torch.zeros(len(classes), z.shape[1], dtype=z.dtype, requires_grad=True)
        bias = torch.zeros(len(classes), dtype=z.dtype, requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(z @ weight.T + bias, labels) + l2 * weight.square().sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        return cls(
            tuple(classes),
            kind,
            mean.float(),
            std.float(),
            weight.detach().float(),
            bias.detach().float(),
            **kwargs,
        )

    def probabilities(self, features: Tensor) -> Tensor:
        """``(N, F)`` features -> ``(N, C)`` class probabilities."""
        z = (features.float() - self.mean) / self.std
        return torch.softmax(z @ self.weight.T + self.bias, dim=1)

    @torch.no_grad()
    def detect(self, net: nn.Module | None, image: Tensor) -> Detection:
        """The degradation of ``image`` ``(1, 3, H, W)``: the mean of the class probabilities of
        up to :attr:`crops` crops on an even grid."""
        crops = crop_grid(image, self.crop, self.crops)
        device = next(net.parameters()).device if net is not None else crops.device
        probs = self.probabilities(features(net, crops.to(device), self.kind).cpu()).mean(0)
        order = probs.argsort(descending=True).tolist()
        return Detection(tuple((self.classes[i], float(probs[i])) for i in order))

    def to_dict(self) -> dict[str, Any]:
        """Tensors, strings and numbers only (a bundle's ``detector``; ``weights_only`` loads)."""
        return {
            "classes": list(self.classes),
            "kind": self.kind,
            "mean": self.mean,
            "std": self.std,
            "weight": self.weight,
            "bias": self.bias,
            "crop": self.crop,
            "crops": self.crops,
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any], source: str = "detector") -> DegradationDetector:
        """The inverse of :meth:`to_dict`; checks the shapes agree."""
        try:
            mean, std, weight, bias = (
                torch.as_tensor(stored[k]).float() for k in ("mean", "std", "weight", "bias")
            )
            detector = cls(
                tuple(str(c) for c in stored["classes"]),
                str(stored["kind"]),
                mean,
                std,
                weight,
                bias,
                crop=int(stored.get("crop", 96)),
                crops=int(stored.get("crops", 9)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise RCOTError(f"{source}: not a degradation detector ({err})") from err
        c, f = detector.weight.shape
        if (
            detector.kind not in FEATURES
            or c != len(detector.classes)
            or detector.bias.shape != (c,)
            or detector.mean.shape != (f,)
            or detector.std.shape != (f,)
        ):
            raise RCOTError(f"{source}: a degradation detector with inconsistent shapes")
        return detector
