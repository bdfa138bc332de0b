"""rcot-demo without a browser: upload limits, the model chooser, degradations, scores, safety.

The page itself is driven in a real browser by tests/test_demo_browser.py.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from rcot_lightning.cli.demo_inputs import (
    AUTO,
    SYNTHETIC,
    TASKS,
    LoadedMaps,
    ModelChoice,
    StopCheck,
    UploadLimits,
    default_models,
    degrade,
    list_models,
    read_upload,
    resolve_model,
    score_rows,
    score_table,
    synthetic_degradation,
    task_model,
)
from rcot_lightning.data.degradations import JPEG, GaussianBlur, GaussianNoise, Haze, RainStreaks
from rcot_lightning.errors import MissingExtraError, RCOTError
from rcot_lightning.inference import InferenceSettings
from rcot_lightning.pretrained import DEFAULT_MODEL, available
from tests.conftest import cli_env, run_cli

LIMITS = UploadLimits(max_mb=1.0, max_megapixels=0.01)


def _png(path: Path, width: int, height: int) -> Path:
    Image.new("RGB", (width, height), (90, 120, 200)).save(path)
    return path


# ------------------------------------------------------------------------------ uploads
@pytest.mark.parametrize(
    ("node", "key"),
    [
        ({"max_upload_mb": 0, "max_megapixels": 4}, "demo.max_upload_mb"),
        ({"max_upload_mb": 5, "max_megapixels": "a lot"}, "demo.max_megapixels"),
        ({"max_upload_mb": True, "max_megapixels": 4}, "demo.max_upload_mb"),
    ],
)
def test_upload_limits_name_their_key(node: dict[str, Any], key: str) -> None:
    with pytest.raises(RCOTError, match=rf"^{key} must be a positive number"):
        UploadLimits.from_config(node)


def test_an_upload_within_the_limits_is_read(tmp_path: Path) -> None:
    image = read_upload(_png(tmp_path / "ok.png", 80, 60), LIMITS)
    assert image.shape == (3, 60, 80) and image.dtype == torch.float32


def test_an_upload_over_the_megapixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _png(tmp_path / "big.png", 200, 100)  # 0.02 megapixels, a tiny file
    with pytest.raises(
        RCOTError,
        match=r"big\.png is 200x100 \(0\.02 megapixels\), over .*\(demo\.max_megapixels\)",
    ):
        read_upload(path, LIMITS)


def test_an_upload_over_the_byte_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "heavy.png"
    path.write_bytes(b"\0" * 1_100_000)
    with pytest.raises(RCOTError, match=r"heavy\.png is 1\.1 MB, over .*\(demo\.max_upload_mb\)"):
        read_upload(path, LIMITS)


def test_a_file_that_is_not_an_image_gets_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(RCOTError, match=r"notes\.png is not an image the demo can read") as err:
        read_upload(path, LIMITS)
    assert str(tmp_path) not in str(err.value)  # the upload's folder is not the user's business


def test_a_tiny_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RCOTError, match=r"4x4; the demo needs >= 16"):
        read_upload(_png(tmp_path / "dot.png", 4, 4), LIMITS)


# ------------------------------------------------------------------------------- models
def _checkpoint(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_the_chooser_lists_bundled_models_and_checkpoints_under_its_folder_only(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    _checkpoint(runs / "old" / "checkpoints" / "last.ckpt", 1_000)
    newest = _checkpoint(runs / "new" / "checkpoints" / "last.ckpt", 2_000)
    _checkpoint(runs / "new" / "checkpoints" / "epoch=1.ckpt", 1_500)
    outside = _checkpoint(tmp_path / "elsewhere" / "secret.ckpt", 3_000)
    (runs / "link.ckpt").symlink_to(outside)  # a link leading out of the folder
    (runs / "notes.txt").write_text("not a checkpoint")

    from rcot_lightning.pretrained import available

    # The page restores at the image's size: the x4 map (sr-blind) is rcot-restore's only.
    bundled = [f"bundled: {name}" for name, entry in available().items() if entry.upscale == 1]
    assert "bundled: sr-blind" not in bundled and "bundled: derain-blind" in bundled
    choices = list_models(runs)
    assert list(choices) == [
        *bundled,
        f"latest run in {runs}",
        "checkpoint: new/checkpoints/last.ckpt",
        "checkpoint: new/checkpoints/epoch=1.ckpt",
        "checkpoint: old/checkpoints/last.ckpt",
    ]
    assert choices[f"latest run in {runs}"].ckpt_path == newest
    assert choices["bundled: denoise-blind"].pretrained == "denoise-blind"
    # The bundled entries, the latest run, the newest file.
    assert len(list_models(runs, limit=1)) == len(bundled) + 2
    assert list(list_models(tmp_path / "missing")) == bundled


def test_model_b_is_the_latest_run_and_never_a_copy_of_model_a(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _checkpoint(runs / "new" / "checkpoints" / "last.ckpt", 2_000)
    labels = list(list_models(runs))
    assert default_models(labels, "bundled: denoise-blind") == (
        "bundled: denoise-blind",
        f"latest run in {runs}",
    )
    # No run: B is another bundled entry, not A again (two bundled entries ship).
    bundled = list(list_models(None))
    a, b = default_models(bundled, "bundled: denoise-blind")
    assert a == "bundled: denoise-blind" and b != a and b in bundled
    # A default that is not listed falls back to the first entry.
    assert default_models(["only"], "gone") == ("only", "only")
    with pytest.raises(RCOTError, match="no model to offer"):
        default_models([], "bundled: denoise-blind")


def test_the_browser_can_name_only_a_listed_model(tmp_path: Path) -> None:
    choices = list_models(tmp_path)
    assert resolve_model("bundled: denoise-blind", choices).pretrained == "denoise-blind"
    for forged in (str(tmp_path / "x.ckpt"), "checkpoint: ../../etc/passwd", None, 3):
        with pytest.raises(RCOTError, match="not one of the listed models; reload the page"):
            resolve_model(forged, choices)


def test_a_loaded_model_is_reused() -> None:
    maps = LoadedMaps(torch.device("cpu"))
    choice = list_models(None)["bundled: denoise-blind"]
    net, source = maps.get(choice)
    assert maps.get(choice)[0] is net and "denoise-blind" in source


# ------------------------------------------------- the model a degradation picks (auto)
@pytest.fixture
def actions(compose_config: Callable[..., DictConfig]) -> Iterator[Any]:
    """The page's actions on the demo config (CPU, bundled models only)."""
    from rcot_lightning.cli.demo_page import DemoActions, DemoSettings, Workspace

    cfg = compose_config("demo", "device=cpu", "demo.checkpoints_dir=null")
    workspace = Workspace()
    yield DemoActions(DemoSettings.from_config(cfg), workspace)
    workspace.close()


def _loads(actions: Any, monkeypatch: pytest.MonkeyPatch) -> list[ModelChoice]:
    """The choices ``actions`` loads from now on; each map is the identity (nothing is read)."""
    loaded: list[ModelChoice] = []

    def get(choice: ModelChoice) -> tuple[torch.nn.Module, str]:
        loaded.append(choice)
        return torch.nn.Identity(), f"test map {choice.pretrained}"

    monkeypatch.setattr(actions.maps, "get", get)
    return loaded


def _restore(actions: Any, photo: Path, kind: str, model: str = AUTO) -> str:
    """The report of the *Restore* button on ``photo`` degraded by ``kind``."""
    return str(actions.restore(photo, None, None, kind, 25, 2, 20, 0, "32", model, session="s")[3])


def test_every_degradation_has_a_task() -> None:
    assert set(TASKS) == set(SYNTHETIC) - {"none"}


def test_the_page_preselects_auto_unless_a_model_is_named(
    compose_config: Callable[..., DictConfig],
) -> None:
    from rcot_lightning.cli.demo_page import DemoSettings

    settings = DemoSettings.from_config(compose_config("demo", "device=cpu"))
    assert settings.default_model == AUTO and next(iter(settings.models())) == AUTO
    named = compose_config("demo", "device=cpu", "pretrained=denoise-blind-fast")
    assert DemoSettings.from_config(named).default_model == "bundled: denoise-blind-fast"


def test_each_degradation_picks_a_bundled_model_of_its_task_else_the_default() -> None:
    entries = available()
    for kind, task in TASKS.items():
        name, why = task_model(kind)
        if any(entry.info.get("task") == task for entry in entries.values()):
            assert entries[name].info["task"] == task and why.endswith(f"the {kind} degradation)")
        elif "allinone-blind" in entries:  # issue 31: the one map for every degradation
            assert (name, why) == (
                "allinone-blind",
                f"allinone-blind (no bundled model for {kind} alone: the one for all)",
            )
        else:
            assert (name, why) == (
                DEFAULT_MODEL,
                f"{DEFAULT_MODEL} (no bundled model for {kind} yet)",
            )
    assert task_model("noise")[0] == "denoise-blind"  # <task>-blind before denoise-blind-fast
    # allinone-blind lowers saved JPEG files at q20/q40; the bundled specialist gains on them.
    assert task_model("jpeg")[0] == "jpeg-blind"
    assert task_model("none")[0] == DEFAULT_MODEL


def test_a_degradation_without_a_specialist_goes_to_the_all_in_one_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rcot_lightning.pretrained as pretrained
    from rcot_lightning.pretrained import Pretrained

    entries = {n: e for n, e in available().items() if e.info.get("task") != "dehaze"}
    entries["allinone-blind"] = Pretrained("allinone-blind", "", Path("x.pt"), {"task": "allinone"})
    monkeypatch.setattr(pretrained, "available", lambda: entries)
    assert task_model("haze") == (
        "allinone-blind",
        "allinone-blind (no bundled model for haze alone: the one for all)",
    )
    assert task_model("rain")[0] == "derain-blind"  # a specialist first
    assert task_model("noise")[0] == "denoise-blind"
    assert task_model("none")[0] == DEFAULT_MODEL


def test_rain_is_restored_with_derain_blind_and_the_page_says_so(
    actions: Any, tmp_path: Path
) -> None:
    report = _restore(actions, _png(tmp_path / "photo.png", 80, 60), "rain")
    assert report.startswith(
        "**auto: derain-blind (matches the rain degradation) — bundled model derain-blind: "
    ), report
    assert list(actions.maps._maps) == [("bundled:derain-blind", 0.0)]  # the real map ran


def test_a_degradation_without_a_bundled_model_falls_back_to_the_default_and_says_so(
    actions: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rcot_lightning.pretrained as pretrained

    entries = {
        n: e
        for n, e in available().items()
        if e.info.get("task") not in ("dehaze", "allinone")  # neither a specialist nor all-in-one
    }
    monkeypatch.setattr(pretrained, "available", lambda: entries)  # whatever ships later
    loaded = _loads(actions, monkeypatch)
    report = _restore(actions, _png(tmp_path / "photo.png", 80, 60), "haze")
    assert [choice.pretrained for choice in loaded] == [DEFAULT_MODEL]
    assert report.startswith(
        f"**auto: {DEFAULT_MODEL} (no bundled model for haze yet) — test map {DEFAULT_MODEL}**"
    ), report


def test_a_model_the_user_chose_is_kept_whatever_the_degradation(
    actions: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _loads(actions, monkeypatch)
    photo = _png(tmp_path / "photo.png", 80, 60)
    for kind in TASKS:
        report = _restore(actions, photo, kind, "bundled: denoise-blind-fast")
        assert report.startswith("**test map denoise-blind-fast**"), report
    assert {choice.pretrained for choice in loaded} == {"denoise-blind-fast"}
    # In A/B too: auto (A) follows the degradation, B is the user's.
    _, _, _, report, *_ = actions.compare(
        photo, None, None, "noise", 25, 2, 20, 0, "32", AUTO, "bundled: denoise-blind-fast",
        session="s",
    )  # fmt: skip
    assert "**A**: auto: denoise-blind (matches the noise degradation)" in report, report
    assert "**B**: test map denoise-blind-fast" in report, report


# ------------------------------------------------------------------------- degradations
@pytest.mark.parametrize(
    ("kind", "kind_type"),
    [("noise", GaussianNoise), ("rain", RainStreaks), ("haze", Haze), ("blur", GaussianBlur),
     ("jpeg", JPEG)],
)  # fmt: skip
def test_each_synthetic_degradation_is_the_librarys(kind: str, kind_type: type) -> None:
    degradation = synthetic_degradation(kind, noise_sigma=30, blur_sigma=1.5, jpeg_quality=10)
    assert isinstance(degradation, kind_type)
    clean = torch.rand(3, 32, 40)
    degraded = degrade(clean, degradation, seed=3)
    assert degraded.shape == clean.shape and not torch.equal(degraded, clean)
    assert degraded.min() >= 0 and degraded.max() <= 1
    assert torch.equal(degraded, degrade(clean, degradation, seed=3))  # seeded


def test_degradation_settings_reach_the_library() -> None:
    noise = synthetic_degradation("noise", noise_sigma=15)
    assert isinstance(noise, GaussianNoise) and noise.sigma == (15.0, 15.0)
    jpeg = synthetic_degradation("jpeg", jpeg_quality=35)
    assert isinstance(jpeg, JPEG) and jpeg.quality == (35.0, 35.0)
    assert synthetic_degradation("none") is None
    with pytest.raises(RCOTError, match="degradation 'snow' is not one of none, noise"):
        synthetic_degradation("snow")


# ---------------------------------------------------------------------- running, scores
def test_a_large_image_is_restored_in_tiles_with_progress() -> None:
    seen: list[int] = []

    def progress(batches: Any) -> Any:
        seen.append(len(batches))
        return batches

    image = torch.rand(3, 100, 130)
    settings = InferenceSettings(device="cpu", tile=64, tile_overlap=16)
    restored = settings.restore(torch.nn.Identity(), image[None], progress=progress)[0]
    assert torch.allclose(restored, image, atol=1e-6)
    assert seen and seen[0] >= 2  # tile batches were reported


class _Progress:
    """The page's progress display: records the tile batches it is shown."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def tqdm(self, batches: Any, desc: str = "") -> Any:
        self.seen.append(len(batches))
        return batches


def test_the_config_settings_reach_the_map(compose_config: Callable[..., DictConfig]) -> None:
    from rcot_lightning.cli.demo_page import DemoActions, DemoSettings, Workspace

    calls: list[tuple[int, ...]] = []

    def net(t: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(t.shape))
        return t

    cfg = compose_config("demo", "device=cpu", "ensemble=4", "tile_overlap=8")
    workspace = Workspace()
    try:
        actions = DemoActions(DemoSettings.from_config(cfg), workspace)
        image = torch.rand(3, 16, 24)
        whole = actions.request_settings(0, "32", image)  # the page's tile 0: the whole image
        assert (whole.tile, whole.tile_overlap, whole.ensemble) == (None, 8, 4)
        restored, seconds, source = actions.run_model(
            "m", (net, "a test map"), image, whole, _Progress(), StopCheck(60)
        )
        assert torch.allclose(restored, image, atol=1e-6) and seconds >= 0
        assert source == "a test map" and len(calls) == 4  # one call per flip/rotation
        with pytest.raises(RCOTError, match=r"^tile must be larger than tile_overlap=8, got 8$"):
            actions.request_settings(8, "32", image)
    finally:
        workspace.close()


def test_scores_and_the_ab_difference() -> None:
    clean = torch.full((3, 32, 32), 0.5)
    rows = score_rows(clean + 0.1, clean, {"A": clean + 0.05, "B": clean + 0.01})
    assert rows["B"]["psnr"] - rows["A"]["psnr"] == pytest.approx(
        20 * torch.log10(torch.tensor(5.0)).item()
    )
    table = score_table(rows, {"A": 1.0, "B": 2.0})
    assert "| B − A | +13.98 |" in table and "| input | 20.00 |" in table
    assert score_rows(clean, None, {"A": clean}) == {}
    assert "No clean reference" in score_table({}, {"A": 1.0})


# ------------------------------------------------------------------------------- safety
def test_the_demo_names_the_extra_when_gradio_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from rcot_lightning.cli.demo import import_gradio

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now fails
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[demo\]"'):
        import_gradio()


def test_the_workspace_deletes_a_closed_pages_files_and_nothing_outside(tmp_path: Path) -> None:
    from rcot_lightning.cli.demo_page import Workspace

    workspace = Workspace()
    try:
        upload = workspace.cache / "abc" / "photo.png"
        upload.parent.mkdir()
        upload.write_bytes(b"x")
        result = workspace.session_dir("s1") / "photo_restored.png"
        result.write_bytes(b"x")
        mine = tmp_path / "mine.png"
        mine.write_bytes(b"x")
        workspace.remember("s1", upload)
        workspace.remember("s1", mine)  # not in the workspace: never deleted
        workspace.forget("s1")
        assert not upload.exists() and not result.exists() and mine.exists()
    finally:
        workspace.close()
    assert not workspace.root.exists()


def test_the_demo_config_composes_and_is_checked(compose_config: Callable[..., DictConfig]) -> None:
    from rcot_lightning.cli.demo_page import DemoSettings

    cfg = compose_config("demo", "device=cpu")
    assert cfg.demo.server_name == "127.0.0.1" and cfg.demo.share is False
    settings = DemoSettings.from_config(cfg)
    assert settings.default_model == AUTO and settings.inference.tile == 512
    assert (settings.requests.max_megapixels, settings.requests.max_seconds) == (16, 60)
    assert settings.requests.max_tile == 1024
    for override, message in (
        ("precision=16", "precision must be auto, 32 or bf16"),
        ("demo.cache_max_age=0", "demo.cache_max_age must be a positive integer, got 0"),
        ("pretrained=nope", "no bundled model named 'nope'"),
        ("demo.max_request_megapixels=0", "demo.max_request_megapixels must be a positive"),
        ("demo.max_request_seconds=-5", "demo.max_request_seconds must be a positive number"),
        ("demo.max_tile=100", "demo.max_tile must be a positive multiple of 8"),
        ("tile=2048", "tile=2048 is over demo.max_tile=1024; set a smaller tile"),
    ):
        bad = OmegaConf.merge(cfg, OmegaConf.from_dotlist([override]))
        with pytest.raises(RCOTError, match=message):
            DemoSettings.from_config(bad)


class _FakePage:
    """Records how the demo launches a page, and returns at once instead of serving."""

    def __init__(self) -> None:
        self.launched: dict[str, Any] = {}
        self.closed = False

    def queue(self, **kwargs: Any) -> None:
        pass

    def launch(self, **kwargs: Any) -> tuple[None, str, str | None]:
        self.launched = kwargs
        return None, "http://127.0.0.1:1/", None

    def block_thread(self) -> None:
        pass

    def close(self, verbose: bool = True) -> None:
        self.closed = True


@pytest.mark.parametrize("share", [False, True])
def test_serving_is_local_and_private_unless_asked(
    share: bool,
    compose_config: Callable[..., DictConfig],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("gradio", reason="the demo extra is not installed")
    import rcot_lightning.cli.demo_page as demo_page
    from rcot_lightning.cli.demo import serve

    page = _FakePage()
    monkeypatch.setattr(demo_page, "build_page", lambda actions: page)
    for key in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)  # whatever serve() sets is undone after the test
    with caplog.at_level(logging.WARNING, logger="rcot_lightning.cli.demo"):
        serve(compose_config("demo", "device=cpu", f"demo.share={str(share).lower()}"))
    assert page.launched["server_name"] == "127.0.0.1" and page.launched["server_port"] is None
    assert page.launched["share"] is share and page.closed
    assert page.launched["max_file_size"] == "50mb"
    assert ("public *.gradio.live address" in caplog.text) is share
    folder = capsys.readouterr().out.split("temporary files in ")[1].split(" ")[0]
    assert not Path(folder).exists()  # deleted when the demo stopped


@pytest.mark.integration
def test_a_bad_setting_ends_the_command_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "rcot_lightning.demo", "demo.max_upload_mb=-1", cwd=tmp_path, timeout=120, env=cli_env()
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "rcot-demo: error: demo.max_upload_mb must be a positive number, got -1"
    )
