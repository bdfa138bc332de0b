"""``rcot-export``: the map alone, to ONNX and TorchScript, at any height and width."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from rcot_lightning.checkpoints.load import build_module, load_module
from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY
from rcot_lightning.cli.export import PaddedMap, export_map, run_exported
from rcot_lightning.errors import RCOTError
from rcot_lightning.nets import TwoPassMap
from tests.conftest import run_cli

TINY_MAP = {
    "_target_": "rcot_lightning.nets.TwoPassMap",
    "dim": 4,
    "num_blocks": [1, 1, 1, 1],
    "num_refinement_blocks": 1,
    "heads": [1, 1, 1, 2],
    "ffn_expansion_factor": 2.0,
}

#: One size the map handles as is, one it must pad (neither side a multiple of 8).
SIZES = [(2, 40, 48), (1, 37, 53)]


def _onnx_or_skip() -> None:
    for name in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f'{name} is not installed: pip install "rcot-lightning[export]"')


@pytest.fixture(scope="module")
def tiny_map() -> TwoPassMap:
    torch.manual_seed(0)
    return TwoPassMap(**{k: v for k, v in TINY_MAP.items() if k != "_target_"}).eval()


@pytest.fixture(scope="module")
def ema_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny map whose EMA copy differs from the trained map."""
    module = build_module(
        {
            "_target_": "rcot_lightning.RCOTModule",
            "transport_map": TINY_MAP,
            "potential": {"_target_": "rcot_lightning.nets.Potential", "channels": [4, 4]},
            "ema_decay": 0.9,
        }
    )
    assert module.map_ema is not None
    with torch.no_grad():
        for param in module.map_ema.parameters():
            param.add_(0.05 * torch.randn_like(param))
    ckpt = tmp_path_factory.mktemp("ckpt") / "ema.ckpt"
    torch.save({"state_dict": module.state_dict(), BUILD_CONFIG_KEY: module.build_config}, ckpt)
    return ckpt


def _max_difference(path: Path, fmt: str, net: torch.nn.Module, size: tuple[int, ...]) -> float:
    degraded = torch.rand(size[0], 3, *size[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(degraded)
    restored = run_exported(path, fmt, degraded)
    assert restored.shape == expected.shape
    return float((restored - expected).abs().max())


def test_padded_map_equals_the_map(tiny_map: TwoPassMap) -> None:
    y = torch.rand(1, 3, 19, 26)
    with torch.no_grad():
        assert torch.allclose(PaddedMap(tiny_map)(y), tiny_map(y), atol=1e-6)


def test_torchscript_matches_the_map_at_two_sizes(tiny_map: TwoPassMap, tmp_path: Path) -> None:
    path = export_map(tiny_map, tmp_path / "map.pt", "torchscript")
    for size in SIZES:
        assert _max_difference(path, "torchscript", tiny_map, size) <= 1e-4, size


@pytest.mark.integration
def test_onnx_matches_the_map_at_two_sizes(tiny_map: TwoPassMap, tmp_path: Path) -> None:
    _onnx_or_skip()
    import onnx

    path = export_map(tiny_map, tmp_path / "map.onnx", "onnx")
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    (graph_input,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    for size in SIZES:
        assert _max_difference(path, "onnx", tiny_map, size) <= 1e-4, size


def test_export_rejects_an_unknown_format_and_an_old_opset(
    tiny_map: TwoPassMap, tmp_path: Path
) -> None:
    with pytest.raises(RCOTError, match="'tflite' is not supported; use one of onnx"):
        export_map(tiny_map, tmp_path / "map.tflite", "tflite")
    _onnx_or_skip()
    with pytest.raises(RCOTError, match="opset: 13 is too old"):
        export_map(tiny_map, tmp_path / "map.onnx", "onnx", opset=13)


@pytest.mark.integration
def test_cli_exports_the_ema_map_of_a_checkpoint(ema_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "ema.pt"
    proc = run_cli(
        "rcot_lightning.export",
        f"ckpt_path={ema_checkpoint}",
        "format=torchscript",
        f"output={out}",
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"model: checkpoint {ema_checkpoint}" in proc.stdout
    assert f"wrote torchscript to {out}" in proc.stdout
    module = load_module(ema_checkpoint)
    assert module.map_ema is not None
    assert _max_difference(out, "torchscript", module.map_ema, (1, 29, 35)) <= 1e-4
    assert _max_difference(out, "torchscript", module.transport_map, (1, 29, 35)) > 1e-3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["format=tflite"],
            "rcot-export: error: format: 'tflite' is not supported; use one of onnx, torchscript",
        ),
        (
            ["model=nope", "format=torchscript"],
            "rcot-export: error: model: no bundled model named 'nope'; known: allinone-blind, "
            "denoise-blind-fast, denoise-blind, derain-blind, jpeg-blind, lowlight-blind, sr-blind",
        ),
    ],
    ids=["format", "model"],
)
@pytest.mark.integration
def test_cli_bad_input_is_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    proc = run_cli("rcot_lightning.export", *args, "output=x.out", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "x.out").exists()
