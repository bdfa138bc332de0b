"""Export the transport map alone to ONNX or TorchScript: ``rcot-export format=onnx output=F``.

The map comes from ``ckpt_path=`` (its EMA weights when the run kept them) or ``model=NAME`` (a
bundled pretrained entry, by default ``denoise-blind``; the config key is ``pretrained``), as for
``rcot-restore``. The exported
graph takes ``degraded`` ``(B, 3, H, W)`` float32 in [0, 1] and returns ``restored`` of the same
shape, with batch, height and width dynamic: it reflect-pads H and W to the map's multiple of 8
and crops back inside the graph, so any H, W >= 8 works. It does not clamp (clamp to [0, 1]
yourself) and does not tile (cut large images into tiles yourself, as
:func:`rcot_lightning.inference.restore_image` does).

* ONNX: opset :data:`ONNX_OPSET` (``LayerNormalization`` is an op from 17 on); runs in
  onnxruntime >= 1.14 or any runtime of that opset. Exporting needs the ``onnx`` package
  (``pip install "rcot-lightning[export]"``).
* TorchScript: ``torch.jit.load(path)`` in Python or ``torch::jit::load`` in C++ (libtorch of
  the same or a newer version); no rcot-lightning needed.

After writing, the command runs the file at a size that is not a multiple of 8 and reports the
largest difference from the PyTorch map.
"""

from __future__ import annotations

import copy
import math
import sys
import tempfile
import warnings
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from rcot_lightning.cli import app
from rcot_lightning.cli.checks import check_export_output
from rcot_lightning.errors import RCOTError
from rcot_lightning.nets.restormer import ChannelLayerNorm
from rcot_lightning.shapes import size_multiple
from rcot_lightning.values import flag

__all__ = ["FORMATS", "ONNX_OPSET", "OnnxRuntimeMap", "PaddedMap", "export_map", "run_exported"]

#: What ``format=`` accepts.
FORMATS = ("onnx", "torchscript")

#: The ONNX opset written by default.
ONNX_OPSET = 17

# Traced at this size: a multiple of 8, so the map's own padding branch is a no-op in the graph.
_TRACE_SIZE = (64, 64)


class _StaticLayerNorm(nn.Module):
    """The map's channel LayerNorm with its normalised shape fixed from its weight.

    The original reads the shape from the input, which the ONNX exporter cannot turn into the
    constant ``LayerNormalization`` needs; the arithmetic is the same.
    """

    def __init__(self, norm: ChannelLayerNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps
        self.shape = (int(norm.weight.shape[0]),)

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class PaddedMap(nn.Module):
    """A map that reflect-pads H and W to ``multiple`` and crops back, traceable at any size.

    Not :func:`rcot_lightning.shapes.pad_to_multiple`: that one computes the pad amounts as Python
    integers and skips aligned inputs, which a trace would freeze at the traced size. This one
    always pads (by zero when aligned) with amounts computed from the traced input's shape.

    Args:
        net: the transport map (copied; its channel LayerNorms get a static shape).
        multiple: the size multiple the map needs; None takes the one ``net`` declares
            (:func:`rcot_lightning.shapes.size_multiple`).

    Shape:
        ``(B, 3, H, W) -> (B, 3, H, W)``, H and W at least ``multiple``.

    Example:
        >>> from rcot_lightning.nets import TwoPassMap
        >>> net = TwoPassMap(dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=0,
        ...                  heads=(1, 1, 1, 1), ffn_expansion_factor=2.0).eval()
        >>> y = torch.rand(1, 3, 13, 21)
        >>> bool(torch.allclose(PaddedMap(net)(y), net(y), atol=1e-6))
        True
    """

    def __init__(self, net: nn.Module, multiple: int | None = None) -> None:
        super().__init__()
        multiple = size_multiple(net) if multiple is None else multiple
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        for parent in list(self.net.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, ChannelLayerNorm):
                    setattr(parent, name, _StaticLayerNorm(child))
        self.multiple = multiple

    def forward(self, degraded: Tensor) -> Tensor:
        h, w = degraded.shape[-2], degraded.shape[-1]
        pad_h = (self.multiple - h % self.multiple) % self.multiple
        pad_w = (self.multiple - w % self.multiple) % self.multiple
        padded = F.pad(degraded, (0, pad_w, 0, pad_h), mode="reflect")
        return self.net(padded)[..., :h, :w]


def export_map(
    net: nn.Module,
    output: str | Path,
    format: str = "onnx",
    multiple: int | None = None,
    opset: int = ONNX_OPSET,
) -> Path:
    """Write ``net`` as an ONNX or TorchScript file with dynamic batch, height and width.

    Args:
        net: the transport map ``(B, 3, H, W) -> (B, 3, H, W)``.
        output: the file to write (its folder is created).
        format: ``"onnx"`` or ``"torchscript"``.
        multiple: the size multiple the map pads to; None takes the one ``net`` declares.
        opset: the ONNX opset (ONNX only; at least 17).

    Returns:
        ``output``.

    Raises:
        RCOTError: an unsupported format or opset, or ``onnx`` not installed.
    """
    if format not in FORMATS:
        raise RCOTError(f"format: {format!r} is not supported; use one of {', '.join(FORMATS)}")
    path = Path(output).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = PaddedMap(net.cpu(), multiple).eval()
    example = torch.rand(1, 3, *_TRACE_SIZE)
    with warnings.catch_warnings(), torch.no_grad():
        # The map's shape checks and alignment branch are Python conditions the trace fixes at
        # the traced, aligned size: true for every input PaddedMap hands it.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if format == "torchscript":
            traced = torch.jit.trace(wrapped, example, check_trace=False)
            torch.jit.save(traced, str(path))
            return path
        _export_onnx(wrapped, example, path, opset)
    return path


def _export_onnx(wrapped: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    if opset < ONNX_OPSET:
        raise RCOTError(f"opset: {opset} is too old; the map needs LayerNormalization (>= 17)")
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so before it fails deep inside)
    except ImportError as err:
        raise RCOTError(
            'format=onnx needs the onnx package: pip install "rcot-lightning[export]"'
        ) from err
    dynamic = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        wrapped,
        (example,),
        str(path),
        # The tracing exporter: dynamo's drops the data-dependent padding of odd sizes.
        dynamo=False,
        opset_version=opset,
        input_names=["degraded"],
        output_names=["restored"],
        dynamic_axes={"degraded": dynamic, "restored": dynamic},
    )


class OnnxRuntimeMap(nn.Module):
    """``net`` exported to ONNX (a temporary file) and run by an ONNX Runtime CPU session:
    what ``rcot-restore backend=onnxruntime`` runs.

    On CPUs where PyTorch's kernels for the map's small, memory-bound layers are slow (a 2-core
    AVX2-only AMD EPYC: 12 MP in 70.9 s against 182.1 s, ``benchmarks/onnx_speed.py``), ONNX
    Runtime runs the same map to the same numbers (within 1e-6). An optional extra:
    ``pip install "rcot-lightning[export]"``.

    Called like the map, ``(B, 3, H, W) -> (B, 3, H, W)`` float32 on the CPU, any H and W (the
    exported graph pads to the map's multiple itself). The torch map stays inside as
    ``module``, so :func:`rcot_lightning.shapes.size_multiple` reads its multiple through this
    wrapper and tiles are laid out as for the map itself; it has no trainable use.

    Args:
        net: the transport map (any map ``rcot-export`` exports).
        threads: ONNX Runtime's intra-op threads; None takes ``torch.get_num_threads()``.

    Raises:
        RCOTError: ``onnx`` or ``onnxruntime`` is not installed (says what to install).
    """

    def __init__(self, net: nn.Module, threads: int | None = None) -> None:
        super().__init__()
        try:
            import onnx  # noqa: F401  (the export needs it)
            import onnxruntime
        except ImportError as err:
            raise RCOTError(
                "backend=onnxruntime needs the onnx and onnxruntime packages: "
                'pip install "rcot-lightning[export]" (or use backend=torch)'
            ) from err
        self.module = net
        self._folder = tempfile.TemporaryDirectory(prefix="rcot-onnx-")
        path = export_map(net, Path(self._folder.name) / "map.onnx", "onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def forward(self, degraded: Tensor) -> Tensor:
        if degraded.device.type != "cpu":
            raise RCOTError("backend=onnxruntime runs on the CPU; use device=cpu")
        feed = {"degraded": degraded.detach().float().contiguous().numpy()}
        (restored,) = self._session.run(["restored"], feed)
        return torch.from_numpy(restored)


def run_exported(path: str | Path, format: str, degraded: Tensor) -> Tensor:
    """Run an exported file on ``degraded`` ``(B, 3, H, W)``; returns ``(B, 3, H, W)``.

    ONNX files run in onnxruntime (``pip install "rcot-lightning[export]"``).
    """
    if format == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path))(degraded)
    try:
        import onnxruntime
    except ImportError as err:
        raise RCOTError(
            'running an ONNX file needs onnxruntime: pip install "rcot-lightning[export]"'
        ) from err
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (restored,) = session.run(["restored"], {"degraded": degraded.numpy()})
    return torch.from_numpy(restored)


def _check(net: nn.Module, path: Path, format: str) -> float:
    """Largest difference between the file and ``net`` on an image not a multiple of 8."""
    degraded = torch.rand(1, 3, 45, 61, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = net(degraded)
    return float((run_exported(path, format, degraded) - expected).abs().max())


def _max_opset() -> int:
    """The newest opset the tracing exporter writes (torch keeps it in a private constant)."""
    try:
        from torch.onnx import _constants

        return int(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except (ImportError, AttributeError):
        return 20


def _opset(value: object) -> int:
    """``opset=`` as a whole number the exporter writes, before the work.

    Past the exporter's newest opset torch dumps the whole graph on failure.
    """
    top = _max_opset()
    message = f"opset must be a whole number from {ONNX_OPSET} to {top}, got {value!r}"
    if isinstance(value, bool):
        raise RCOTError(message)
    try:
        number = int(str(value))
    except ValueError:
        raise RCOTError(message) from None
    if not ONNX_OPSET <= number <= top:
        raise RCOTError(f"{message} (the map needs 17; this torch writes up to {top})")
    return number


def export_files(cfg: DictConfig) -> Path:
    """``rcot-export``: write the chosen map in ``cfg.format`` to ``cfg.output``."""
    from rcot_lightning.checkpoints.atomic import atomic_path
    from rcot_lightning.checkpoints.trust import trust_settings
    from rcot_lightning.cli.checks import check_writable_folder
    from rcot_lightning.cli.map_source import choose_map

    format = str(cfg.format)
    if format not in FORMATS:
        raise RCOTError(f"format: {format!r} is not supported; use one of {', '.join(FORMATS)}")
    opset = _opset(cfg.get("opset", ONNX_OPSET))
    overwrite = flag(cfg.get("overwrite", False), "overwrite", keyed=True)
    verify = flag(cfg.get("verify", True), "verify", keyed=True)
    output = Path(str(cfg.output)).expanduser()
    ckpt_path = app.checkpoint_of(cfg)
    check_export_output(output, ckpt_path, overwrite)
    check_writable_folder(output.parent, "output")
    trust, targets = trust_settings(cfg)
    chosen = choose_map(ckpt_path, cfg.get("pretrained"), "cpu", trust, targets)
    app.report(f"model: {chosen.source}")
    net = chosen.net.cpu().eval()
    difference: float | None = None
    unverified = ""
    try:
        with atomic_path(output) as temp:
            export_map(net, temp, format, opset=opset)
            if verify:
                try:
                    difference = _check(net, temp, format)
                except RCOTError as err:  # onnxruntime missing: the file is still good
                    unverified = f" (not verified: {err})"
            if difference is not None and not math.isfinite(difference):
                raise RCOTError(
                    f"{chosen.source}: the exported map returns non-finite values, so {output} "
                    "was not written; export another checkpoint"
                )
    except OSError as err:
        raise RCOTError(
            f"output: cannot write {output} ({err.strerror or err}); nothing was written and "
            "no partial file was left; choose a place you can write to with free space"
        ) from None
    message = f"wrote {format} to {output}{unverified}"
    if difference is not None:
        message += f" (max |exported - PyTorch| at 45x61: {difference:.2e})"
    app.report(message)
    return output


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def _hydra_main(cfg: DictConfig) -> None:
    with app.exit_on_user_error("rcot-export"):
        export_files(cfg)


def main() -> None:
    """Console entry point ``rcot-export``."""
    from rcot_lightning.cli.map_source import model_alias

    sys.argv = model_alias(sys.argv)
    app.run_cli("rcot-export", _hydra_main)


if __name__ == "__main__":
    main()
