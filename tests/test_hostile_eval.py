"""``rcot-eval`` against hostile or careless input: no checkpoint runs code, a map that returns NaN
is refused before scoring, and bad values end in one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rcot_lightning.cli.eval import evaluate
from tests.hostile import (
    config_attacks,
    one_line_exit,
    overflowing,
    pickle_attack,
    save_checkpoint,
    tiny_config,
)


def _eval(compose_config, ckpt: Path | str, *overrides: str):
    return lambda: evaluate(
        compose_config("eval", f"ckpt_path={ckpt}", "hardware=cpu", "split=val", *overrides)
    )


def test_checkpoints_that_would_run_code_are_refused(
    compose_config, capsys, tmp_path: Path, marker: Path
) -> None:
    bomb = pickle_attack(tmp_path / "bomb.ckpt", marker)
    code, line = one_line_exit("rcot-eval", _eval(compose_config, bomb), capsys)
    assert code == 2 and f"ckpt_path: {bomb} holds more than tensors and plain values" in line
    for name, ckpt in config_attacks(tmp_path, marker).items():
        code, line = one_line_exit("rcot-eval", _eval(compose_config, ckpt), capsys)
        assert code == 2, name
        assert f"ckpt_path: {ckpt}: its stored model: " in line, name
        assert "builds from a file" in line and "nothing was built" in line, name


def test_a_trusted_module_of_your_own_may_be_built(compose_config, tmp_path: Path) -> None:
    from rcot_lightning.checkpoints.load import load_module

    config = tiny_config()
    config["map_scheduler"] = {"_target_": "tests.hostile.tiny_state", "_partial_": True}
    ckpt = save_checkpoint(tmp_path / "own.ckpt", config)
    with pytest.raises(ValueError, match=r"trusted_targets=\[tests.hostile\]"):
        load_module(ckpt)
    assert load_module(ckpt, trusted_targets=["tests.hostile"]) is not None


def test_a_map_that_overflows_is_refused_before_scoring(
    compose_config, capsys, tmp_path: Path
) -> None:
    huge = overflowing(tmp_path / "huge.ckpt")
    code, line = one_line_exit("rcot-eval", _eval(compose_config, huge), capsys)
    assert code == 2 and line == (
        f"rcot-eval: error: ckpt_path: {huge}: the map returns non-finite values (NaN or "
        "infinity) on a test image, so its outputs would be black or NaN; use another "
        "checkpoint of the run (an earlier best-*.ckpt) or retrain"
    )
    assert not (tmp_path / "metrics.csv").exists()


def test_bad_values_name_their_key(compose_config, capsys, tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.ckpt", tiny_config())
    code, line = one_line_exit("rcot-eval", _eval(compose_config, good, "sigmas=[abc]"), capsys)
    assert code == 2 and line == (
        "rcot-eval: error: sigmas must be a list of noise levels >= 0 (0-255 scale), e.g. "
        "sigmas=[15,25,50]; got 'abc'"
    )
    code, line = one_line_exit("rcot-eval", _eval(compose_config, tmp_path), capsys)
    assert code == 2 and line.startswith(
        f"rcot-eval: error: ckpt_path: {tmp_path} is a folder (it holds"
    )
