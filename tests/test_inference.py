"""Padding and tiled inference: tiled == untiled for local networks, odd sizes, errors; the
settings of a restoration (:class:`InferenceSettings`), checked once, naming the config key."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from rcot_lightning.conf import MAP_PRESETS
from rcot_lightning.errors import ArgumentError, RCOTError
from rcot_lightning.inference import InferenceSettings, restore_image, run_precision, tile_starts
from rcot_lightning.nets import TwoPassMap
from rcot_lightning.shapes import pad_to_multiple


def _conv_net() -> nn.Module:
    # Three 3x3 convs: receptive-field radius 3, below overlap / 4 = 4 for overlap 16.
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3, 3, padding=1),
    ).eval()


def test_pad_to_multiple_reflects_and_reports_size() -> None:
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (2, 3, 8, 8) and size == (5, 6)
    torch.testing.assert_close(padded[..., :5, :6], x)
    # reflection: row 5 mirrors row 3, column 6 mirrors column 4
    torch.testing.assert_close(padded[..., 5, :6], x[..., 3, :])
    torch.testing.assert_close(padded[..., :5, 6], x[..., :, 4])


def test_pad_to_multiple_noop_and_replicate_fallback() -> None:
    x = torch.rand(1, 3, 8, 16)
    padded, size = pad_to_multiple(x, 8)
    assert padded is x and size == (8, 16)
    tiny = torch.rand(1, 3, 2, 3)
    padded, size = pad_to_multiple(tiny, 8)  # pad 6 >= 2: reflect impossible
    assert padded.shape == (1, 3, 8, 8) and size == (2, 3)
    torch.testing.assert_close(padded[..., 7, :3], tiny[..., 1, :])
    torch.testing.assert_close(padded[..., :2, 7], tiny[..., :, 2])


def test_tile_starts_cover_with_overlap() -> None:
    for size, tile, overlap in [(72, 32, 16), (96, 32, 8), (40, 32, 16), (32, 32, 16)]:
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == size
        assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("size", [(67, 93), (64, 64), (33, 100)])
def test_tiled_equals_untiled_pointwise(size: tuple[int, int]) -> None:
    y = torch.rand(2, 3, *size)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(3 * t) - t**2

    whole = restore_image(fn, y)
    tiled = restore_image(fn, y, tile=32, overlap=16, tile_batch_size=3)
    assert whole.shape == tiled.shape == y.shape
    torch.testing.assert_close(whole, fn(y), atol=1e-6, rtol=0)
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)


@pytest.mark.parametrize("tile_batch_size", [1, 4])
def test_tiled_equals_untiled_conv_net(tile_batch_size: int) -> None:
    net = _conv_net()
    y = torch.rand(2, 3, 67, 93)
    with torch.inference_mode():
        whole = restore_image(net, y, multiple=8)
        tiled = restore_image(
            net, y, tile=32, overlap=16, multiple=8, tile_batch_size=tile_batch_size
        )
    assert tiled.shape == (2, 3, 67, 93)
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)


def test_conv_net_tiles_differ_without_overlap() -> None:
    # Guard that the previous test is meaningful: with no overlap, tile borders show.
    net = _conv_net()
    y = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        whole = restore_image(net, y)
        tiled = restore_image(net, y, tile=32, overlap=0)
    assert (tiled - whole).abs().max() > 1e-3


def test_small_image_is_only_padded() -> None:
    calls: list[tuple[int, ...]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(t.shape))
        return t + 1

    y = torch.rand(1, 3, 13, 21)
    out = restore_image(fn, y, tile=64, overlap=16, multiple=8)
    assert calls == [(1, 3, 16, 24)]
    torch.testing.assert_close(out, y + 1)


def test_multiple_defaults_to_what_the_network_declares() -> None:
    class Declared(nn.Module):
        size_multiple = 8

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[int, ...]] = []

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            self.calls.append(tuple(t.shape))
            return t + 1

    y = torch.rand(1, 3, 13, 21)
    net = Declared()
    torch.testing.assert_close(restore_image(net, y), y + 1)
    assert net.calls == [(1, 3, 16, 24)]  # padded to the declared multiple, cropped back
    calls: list[tuple[int, ...]] = []

    def plain(t: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(t.shape))
        return t

    restore_image(plain, y)
    assert calls == [(1, 3, 13, 21)]  # a plain callable declares nothing: not padded


def test_tiles_are_batched_and_progress_wrapper_sees_all() -> None:
    shapes: list[tuple[int, ...]] = []
    seen: list[int] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(t.shape))
        return t

    def progress(batches):
        seen.append(len(batches))
        yield from batches

    y = torch.rand(2, 3, 72, 72)  # 4 x 4 tiles of 32 with overlap 16 -> 16 positions
    out = restore_image(fn, y, tile=32, overlap=16, tile_batch_size=5, progress=progress)
    torch.testing.assert_close(out, y)
    assert seen == [4]
    assert [s[0] for s in shapes] == [10, 10, 10, 2]
    assert all(s[-2:] == (32, 32) for s in shapes)


def test_output_channels_and_dtype_follow_fn() -> None:
    y = torch.rand(1, 3, 40, 40)
    out = restore_image(lambda t: t[:, :1].double(), y, tile=16, overlap=8)
    assert out.shape == (1, 1, 40, 40) and out.dtype == torch.float64
    torch.testing.assert_close(out, y[:, :1].double(), atol=1e-6, rtol=0)


def test_shape_and_argument_errors() -> None:
    y = torch.rand(1, 3, 40, 40)
    with pytest.raises(ValueError, match="y must have shape"):
        restore_image(lambda t: t, y[0])
    with pytest.raises(ValueError, match="x must have shape"):
        pad_to_multiple(y[0], 8)
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(y, 0)
    with pytest.raises(ValueError, match="tile must be"):
        restore_image(lambda t: t, y, tile=20, multiple=8)
    with pytest.raises(ValueError, match="overlap"):
        restore_image(lambda t: t, y, tile=16, overlap=16)
    with pytest.raises(ValueError, match="tile_batch_size"):
        restore_image(lambda t: t, y, tile=16, overlap=8, tile_batch_size=0)
    with pytest.raises(ValueError, match="fn must keep"):
        restore_image(lambda t: t[..., :-1], y, tile=16, overlap=8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tiled_equals_untiled_and_cpu() -> None:
    net = _conv_net()
    y = torch.rand(2, 3, 67, 93)
    with torch.inference_mode():
        cpu = restore_image(net, y)
        whole = restore_image(net.cuda(), y.cuda())
        tiled = restore_image(net, y.cuda(), tile=32, overlap=16)
    assert tiled.device.type == "cuda"
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)
    torch.testing.assert_close(whole.cpu(), cpu, atol=1e-3, rtol=0)


# --- geometric self-ensemble ------------------------------------------------------------------


def test_each_ensemble_transform_is_undone():
    from rcot_lightning.inference import _DIHEDRAL, _transform, _untransform

    y = torch.rand(1, 3, 5, 7)
    seen = set()
    for turns, mirrored in _DIHEDRAL:
        moved = _transform(y, turns, mirrored)
        seen.add(moved.flatten().tolist().__repr__())
        assert torch.equal(_untransform(moved, turns, mirrored), y)
    assert len(seen) == 8  # eight distinct images: the whole dihedral group


def test_ensemble_is_the_mean_of_the_transformed_outputs():
    # A map that is not rotation-equivariant: the ensemble must differ from it and equal the
    # explicit average of the 8 back-transformed outputs.
    torch.manual_seed(0)
    net = TwoPassMap(**MAP_PRESETS["tiny"]).eval()
    y = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        expected = torch.stack(
            [
                torch.rot90(net(torch.rot90(y.flip(-1) if m else y, k, (-2, -1))), -k, (-2, -1))
                for k, m in [(0, 0), (0, 1), (2, 0), (2, 1), (1, 0), (1, 1), (3, 0), (3, 1)]
            ]
        )
        expected = torch.stack(
            [e.flip(-1) if m else e for e, m in zip(expected, [0, 1] * 4, strict=True)]
        )
        got = restore_image(net, y, ensemble=8)
        plain = restore_image(net, y)
    torch.testing.assert_close(got, expected.mean(0), rtol=1e-5, atol=1e-6)
    assert (got - plain).abs().max() > 1e-4


def test_ensemble_works_on_tiles_of_a_non_square_image():
    torch.manual_seed(0)
    net = TwoPassMap(**MAP_PRESETS["tiny"]).eval()
    y = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        out = restore_image(net, y, tile=32, overlap=8, ensemble=4)
    assert out.shape == y.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("size", [0, 3, 16, True])
def test_ensemble_size_is_checked(size):
    from rcot_lightning.errors import ArgumentError

    # One ensemble check for the function and the settings, so one wording (the function's
    # own "(1, 2, 4, 8)" tuple is gone).
    with pytest.raises(ArgumentError, match=r"^ensemble must be one of 1, 2, 4, 8 \(1: off;"):
        restore_image(lambda t: t, torch.rand(1, 3, 8, 8), ensemble=size)


# --- the settings of a restoration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("device", "toaster", "device: 'toaster' is not a device (auto, cpu, cuda, cuda:1)"),
        ("precision", "16", "precision must be auto, 32 or bf16, got '16'"),
        ("precision", True, "precision must be auto, 32 or bf16, got 'True'"),
        ("tile", "abc", "tile must be a positive multiple of 8 or null, got 'abc'"),
        ("tile", 64.5, "tile must be a positive multiple of 8 or null, got 64.5"),
        ("tile", 0, "tile must be a positive multiple of 8 or null, got 0"),
        ("tile", float("nan"), "tile must be a positive multiple of 8 or null, got nan"),
        ("tile", 20, "tile must be a positive multiple of 8 or null, got 20"),
        ("tile", True, "tile must be a positive multiple of 8 or null, got True"),
        ("tile_overlap", "abc", "tile_overlap must be an integer >= 0, got 'abc'"),
        ("tile_overlap", -1, "tile_overlap must be an integer >= 0, got -1"),
        ("tile_overlap", 1.5, "tile_overlap must be an integer >= 0, got 1.5"),
        ("tile_overlap", 64, "tile must be larger than tile_overlap=64, got 64"),
        ("ensemble", 3, "ensemble must be one of 1, 2, 4, 8 (1: off; 8 averages all flips and "
         "90-degree rotations at 8x the time), got 3"),
        ("ensemble", True, "ensemble must be one of 1, 2, 4, 8"),
    ],
)  # fmt: skip
def test_each_bad_setting_is_one_error_naming_its_config_key(
    key: str, value: object, message: str
) -> None:
    config = {"device": "cpu", "tile": 64, "tile_overlap": 16, key: value}
    with pytest.raises(ArgumentError) as info:
        InferenceSettings.from_config(config)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, RCOTError) and isinstance(info.value, ValueError)
    # The same check when built directly, and when one value of good settings is replaced.
    with pytest.raises(ArgumentError, match=r"^" + message.split(" ")[0]):
        InferenceSettings(**config)  # type: ignore[arg-type]
    good = InferenceSettings(device="cpu", tile=64, tile_overlap=16)
    with pytest.raises(ArgumentError, match=r"^" + message.split(" ")[0]):
        good.replace(**{key: value})


def test_a_missing_device_is_refused_naming_the_key() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ArgumentError) as info:
        InferenceSettings(device="cuda:1")
    assert str(info.value) == "device=cuda:1: this machine has no cuda device; use device=cpu"


def test_settings_are_normalised_once_and_frozen() -> None:
    settings = InferenceSettings.from_config(
        {"device": "cpu", "precision": "32-true", "tile": "128", "tile_overlap": 8, "ensemble": 4.0}
    )
    assert settings == InferenceSettings(
        device=torch.device("cpu"), precision="32", tile=128, tile_overlap=8, ensemble=4
    )
    assert isinstance(settings.device, torch.device) and type(settings.ensemble) is int
    assert settings.replace(tile=None).tile is None and settings.tile == 128
    auto = InferenceSettings()  # the configs' defaults: auto device, fp32, whole images
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")  # type: ignore[union-attr]
    assert (auto.precision, auto.tile, auto.tile_overlap, auto.ensemble) == ("32", None, 32, 1)
    with pytest.raises(AttributeError):
        settings.tile = 64  # type: ignore[misc]


def test_settings_read_only_their_keys_from_a_command_config(compose_config) -> None:
    cfg = compose_config("restore", "input=x", "output=y", "device=cpu", "tile_overlap=16")
    settings = InferenceSettings.from_config(cfg)
    assert (settings.tile, settings.tile_overlap, settings.ensemble) == (512, 16, 1)
    demo = compose_config("demo", "device=cpu", "ensemble=2", "precision=bf16-mixed")
    assert InferenceSettings.from_config(demo).ensemble == 2
    assert InferenceSettings.from_config(demo).precision in ("32", "bf16")


@pytest.mark.parametrize(("native", "expected"), [("0", "32"), ("1", "bf16")])
def test_bf16_falls_back_to_fp32_once_when_the_settings_are_built(
    native: str, expected: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RCOT_NATIVE_BF16", native)
    settings = InferenceSettings(device="cpu", precision="bf16")
    assert settings.precision == expected
    assert settings.replace(tile=64).precision == expected  # already resolved: no second note
    notes = [r.getMessage() for r in caplog.records if "no native bf16" in r.getMessage()]
    assert len(notes) == (native == "0")
    assert all(n.startswith("precision: this CPU (") for n in notes)
    assert run_precision("bf16-mixed", "cpu") == expected


@pytest.mark.parametrize(("native", "expected"), [("0", "32"), ("1", "bf16")])
def test_auto_precision_is_bf16_only_where_it_is_native_and_says_nothing(
    native: str, expected: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RCOT_NATIVE_BF16", native)
    assert InferenceSettings(device="cpu", precision="auto").precision == expected
    assert run_precision("auto", "cpu") == expected
    assert not [r for r in caplog.records if "no native bf16" in r.getMessage()]


def test_settings_restore_moves_tiles_and_ensembles() -> None:
    calls: list[tuple[int, ...]] = []
    seen: list[int] = []

    def net(t: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(t.shape))
        return t.to(torch.float64)

    def progress(batches):
        seen.append(len(batches))
        return batches

    y = torch.rand(1, 3, 100, 130)
    settings = InferenceSettings(device="cpu", tile=64, tile_overlap=16)
    out = settings.restore(net, y, progress=progress)
    assert out.dtype == torch.float32 and out.shape == y.shape  # float32 whatever the map gives
    torch.testing.assert_close(out, y, atol=1e-6, rtol=0)
    assert seen == [2] and calls[0][0] == 4  # 6 tiles, 4 per call
    calls.clear()
    ensembled = settings.replace(tile=None, ensemble=4).restore(net, y[..., :16, :24])
    assert len(calls) == 4 and torch.allclose(ensembled, y[..., :16, :24], atol=1e-6)
    conv = torch.nn.Conv2d(3, 3, 1)  # parameters that want gradients: none are recorded
    assert not settings.restore(conv, y).requires_grad


def test_settings_restore_asks_before_every_call_of_the_map() -> None:
    asked: list[int] = []
    calls: list[int] = []

    def net(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[0])
        return t

    y = torch.rand(1, 3, 100, 130)
    settings = InferenceSettings(device="cpu", tile=64, tile_overlap=16, ensemble=2)
    out = settings.restore(net, y, before_each_call=lambda: asked.append(1))
    assert torch.allclose(out, y, atol=1e-6)
    assert len(asked) == len(calls) == 12 and set(calls) == {1}  # 6 tiles, one a call, x 2

    class Stop(Exception):
        pass

    def stop_at_the_third() -> None:
        if len(asked) == 14:
            raise Stop

    calls.clear()
    with pytest.raises(Stop):
        settings.restore(net, y, before_each_call=lambda: (asked.append(1), stop_at_the_third()))
    assert len(calls) == 1  # stopped before the map ran again


def test_settings_restore_runs_bf16_under_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCOT_NATIVE_BF16", "1")
    dtypes: list[torch.dtype] = []
    conv = torch.nn.Conv2d(3, 3, 1)

    def net(t: torch.Tensor) -> torch.Tensor:
        out = conv(t)
        dtypes.append(out.dtype)
        return out

    y = torch.rand(1, 3, 16, 16)
    out = InferenceSettings(device="cpu", precision="bf16").restore(net, y)
    assert dtypes == [torch.bfloat16] and out.dtype == torch.float32
    InferenceSettings(device="cpu").restore(net, y)
    assert dtypes[-1] == torch.float32


def test_the_settings_tile_multiple_is_that_of_the_library_maps() -> None:
    from rcot_lightning.inference import TILE_MULTIPLE
    from rcot_lightning.nets.restormer import PAD_MULTIPLE

    assert TILE_MULTIPLE == PAD_MULTIPLE
