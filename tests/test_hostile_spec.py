"""A stored model config is a declarative spec: nothing in a file is instantiated as it says, no
interpolation in it is ever resolved, and each refusal is one line naming the key.

Every case is a weights-only checkpoint (the pickle is not the attack here) whose stored config
would, under Hydra's ``instantiate`` of an OmegaConf node (what loading did before), delete the
*victim*, append to a ``.pth`` file (code at Python's next start), make folders or read the
environment. After each, the victim and the marker are as they were.
"""

from __future__ import annotations

import copy
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from rcot_lightning.checkpoints.load import build_module, check_resumable, load_module
from rcot_lightning.checkpoints.spec import (
    FORMAT_KEY,
    FORMAT_VERSION,
    REGISTRY,
    build_spec,
    check_spec,
    to_spec,
)
from rcot_lightning.cli.eval import evaluate
from rcot_lightning.cli.export import export_files
from rcot_lightning.cli.restore import restore_files
from rcot_lightning.cli.train import run
from rcot_lightning.errors import RCOTError
from rcot_lightning.pretrained import bundle, map_from_bundle
from tests.hostile import image, one_line_exit, save_checkpoint, tiny_config

VICTIM_TEXT = "the user's file"


@pytest.fixture
def victim(tmp_path: Path) -> Any:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    yield path
    assert path.is_file() and path.read_text() == VICTIM_TEXT, "the stored config ran"


def _node(target: str, *args: str, **kwargs: Any) -> str:
    """A Hydra node in flow YAML, as ``oc.decode`` reads it."""
    items = [f"_target_: {target}", "_args_: [" + ", ".join(f"'{a}'" for a in args) + "]"]
    items += [f"{k}: {v}" for k, v in kwargs.items()]
    return "{" + ", ".join(items) + "}"


def interpolations(victim: Path) -> dict[str, str]:
    """Values that, resolved and instantiated, delete ``victim`` or write beside it."""
    folder = victim.parent
    unlink = _node("pathlib.Path.unlink", str(victim))
    pth = _node(
        "builtins.print",
        "import os",
        file=_node("builtins.open", str(folder / "x.pth"), "a"),
    )
    return {
        "oc.create": "${oc.create:${oc.decode:" + f'"{unlink}"' + "}}",
        "oc.decode": "${oc.decode:" + f'"{unlink}"' + "}",
        "pth-file": "${oc.create:${oc.decode:" + f'"{pth}"' + "}}",
        "oc.select": "${oc.select:transport_map.dim,4}",
        "oc.env": "${oc.env:HOME}",
        "rcot_run_dir": "${rcot_run_dir:" + str(folder / "made-by-a-resolver") + "}",
        "rcot_recipe": "${rcot_recipe:a,b,c}",
        "self-reference": "${transport_map.dim}",
        "inside-text": "lr is ${oc.env:HOME} here",
    }


#: Where an interpolation sits: the key the refusal must name, and how to put it there.
PLACES: dict[str, tuple[str, Callable[[dict[str, Any], Any], None]]] = {
    "top": ("seed", lambda c, v: c.__setitem__("seed", v)),
    "nested": ("transport_map.dim", lambda c, v: c["transport_map"].__setitem__("dim", v)),
    "in-a-list": (
        "transport_map.num_blocks[0]",
        lambda c, v: c["transport_map"].__setitem__(
            "num_blocks", [v, *c["transport_map"]["num_blocks"][1:]]
        ),
    ),
    "optimiser-args": ("map_optimizer.lr", lambda c, v: c["map_optimizer"].__setitem__("lr", v)),
    "scheduler-args": (
        "map_scheduler.gamma",
        lambda c, v: c.__setitem__(
            "map_scheduler", {"_target_": "StepLR", "_partial_": True, "step_size": 1, "gamma": v}
        ),
    ),
    "settings-dict": (
        "evaluation.crop_border",
        lambda c, v: c.__setitem__("evaluation", {"crop_border": v}),
    ),
}


def _config(place: str, value: Any) -> dict[str, Any]:
    config = copy.deepcopy(tiny_config())
    PLACES[place][1](config, value)
    return config


def _refused(ckpt: Path, key: str, trusted: list[str] | None = None) -> str:
    with pytest.raises(RCOTError) as info:
        load_module(ckpt, trusted_targets=trusted)
    message = str(info.value)
    assert "\n" not in message and f"ckpt_path: {ckpt}: its stored model: {key}" in message
    return message


@pytest.mark.parametrize("place", sorted(PLACES))
def test_an_interpolation_anywhere_is_refused_never_resolved(
    place: str, tmp_path: Path, victim: Path, marker: Path
) -> None:
    key = PLACES[place][0]
    for name, value in interpolations(victim).items():
        ckpt = save_checkpoint(tmp_path / f"{place}-{name}.ckpt", _config(place, value))
        message = _refused(ckpt, key)
        assert "is an interpolation" in message and "never resolved" in message, name
    assert not list(tmp_path.glob("*.pth")) and not (tmp_path / "made-by-a-resolver").exists()


def test_an_interpolation_in_a_key_is_refused(tmp_path: Path, victim: Path) -> None:
    config = tiny_config() | {"evaluation": {"${oc.env:HOME}": 1}}
    message = _refused(save_checkpoint(tmp_path / "key.ckpt", config), "evaluation.${oc.env:HOME}")
    assert "interpolation in a key" in message


#: Hydra's instructions and private names, at any depth: (key named, config).
INSTRUCTIONS = {
    "args-top": ("_args_", lambda v: tiny_config() | {"_args_": [str(v)]}),
    "args-map": (
        "transport_map._args_",
        lambda v: _with(tiny_config(), "transport_map", {"_args_": [str(v)]}),
    ),
    "args-optimiser": (
        "map_optimizer._args_",
        lambda v: _with(tiny_config(), "map_optimizer", {"_args_": [str(v)]}),
    ),
    "recursive": ("_recursive_", lambda v: tiny_config() | {"_recursive_": False}),
    "convert": (
        "potential._convert_",
        lambda v: _with(tiny_config(), "potential", {"_convert_": "all"}),
    ),
    "kwargs": (
        "map_optimizer._kwargs_",
        lambda v: _with(tiny_config(), "map_optimizer", {"_kwargs_": {}}),
    ),
    "dunder-key": (
        "transport_map.__class__",
        lambda v: _with(tiny_config(), "transport_map", {"__class__": "x"}),
    ),
    "partial-map": (
        "transport_map._partial_",
        lambda v: _with(tiny_config(), "transport_map", {"_partial_": True}),
    ),
    "partial-top": ("_partial_", lambda v: tiny_config() | {"_partial_": True}),
    "not-partial-optimiser": (
        "map_optimizer._partial_",
        lambda v: _with(tiny_config(), "map_optimizer", {"_partial_": False}),
    ),
}


def _with(config: dict[str, Any], key: str, extra: dict[str, Any]) -> dict[str, Any]:
    config[key] = {**config.get(key, {"_target_": "RMSprop", "_partial_": True}), **extra}
    return config


@pytest.mark.parametrize("case", sorted(INSTRUCTIONS))
def test_hydra_instructions_and_private_names_are_refused(
    case: str, tmp_path: Path, victim: Path
) -> None:
    key, make = INSTRUCTIONS[case]
    ckpt = save_checkpoint(tmp_path / f"{case}.ckpt", make(victim))
    message = _refused(ckpt, key)
    assert "refused" in message


#: Targets a file may not build, in the slot they try: (slot, target).
TARGETS = {
    "unlink": ("transport_map", "pathlib.Path.unlink"),
    "open": ("potential", "builtins.open"),
    "os-through-a-module": ("potential", "rcot_lightning.cli.app.os.remove"),
    "dunder-path": ("transport_map", "rcot_lightning.nets.TwoPassMap.__init__"),
    "builtins-of-a-module": ("transport_map", "rcot_lightning.__builtins__.open"),
    "method-of-a-map": ("transport_map", "rcot_lightning.nets.TwoPassMap.load_state_dict"),
    "method-of-the-module": ("transport_map", "rcot_lightning.RCOTModule.load_from_checkpoint"),
    "method-of-an-optimiser": ("map_optimizer", "torch.optim.Adam.step"),
    "callback-with-signal-handlers": (
        "transport_map",
        "rcot_lightning.callbacks.PreemptionCheckpoint",
    ),
    "demo-workspace": ("transport_map", "rcot_lightning.cli.demo_page.Workspace"),
    "logger-writing-files": ("potential", "rcot_lightning.checkpoints.atomic_io.AtomicCSVLogger"),
    "lightning-logger": ("potential", "lightning.pytorch.loggers.CSVLogger"),
    "any-torch-nn": ("transport_map", "torch.nn.parallel.DistributedDataParallel"),
    "an-optimiser-as-the-map": ("transport_map", "RMSprop"),
    "a-map-as-the-optimiser": ("map_optimizer", "TwoPassMap"),
    "a-module-as-the-potential": ("potential", "rcot_lightning.RCOTModule"),
    "not-a-name": ("transport_map", 3),
}


@pytest.mark.parametrize("case", sorted(TARGETS))
def test_only_the_registry_builds_from_a_file(case: str, tmp_path: Path, victim: Path) -> None:
    slot, target = TARGETS[case]
    node: dict[str, Any] = {"_target_": target, "_args_": [str(victim)]}
    if slot == "map_optimizer":
        node["_partial_"] = True
    del node["_args_"]  # the target alone is refused, whatever its arguments
    config = tiny_config() | {slot: node}
    message = _refused(save_checkpoint(tmp_path / f"{case}.ckpt", config), f"{slot}._target_")
    assert "refused" in message or "nothing was built" in message
    # A node elsewhere than the slots builds nothing either.
    misplaced = tiny_config() | {"evaluation": {"_target_": "TwoPassMap"}}
    _refused(save_checkpoint(tmp_path / "misplaced.ckpt", misplaced), "evaluation._target_")


def test_a_tensor_in_the_config_is_refused(tmp_path: Path) -> None:
    config = _config("nested", torch.tensor(4))
    message = _refused(save_checkpoint(tmp_path / "t.ckpt", config), "transport_map.dim")
    assert "holds a Tensor" in message


def test_a_trusted_pickle_is_not_resolved_either(tmp_path: Path, victim: Path) -> None:
    """``trust_checkpoint=true`` unpickles in full; its OmegaConf nodes stay unresolved text."""
    value = interpolations(victim)["oc.create"]
    ckpt = save_checkpoint(tmp_path / "old.ckpt", OmegaConf.create(_config("top", value)))
    with pytest.raises(RCOTError, match=r": seed='\$\{oc.create.* is an interpolation"):
        load_module(ckpt, trust_checkpoint=True)


def test_a_zip_member_with_dots_in_its_name_writes_nothing(tmp_path: Path, marker: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "zip.ckpt", tiny_config())
    with zipfile.ZipFile(ckpt, "a") as archive:
        archive.writestr("zip/../../escaped.txt", "written outside")
        archive.writestr("../escaped.txt", "written outside")
    try:
        load_module(ckpt)  # torch reads members by name from the archive; it extracts nothing
    except RCOTError as err:
        assert "\n" not in str(err)
    assert not list(tmp_path.parent.rglob("escaped.txt"))


def test_a_checkpoint_records_its_format_and_the_registry_names(
    compose_train, tmp_path: Path
) -> None:
    run(compose_train("trainer.max_steps=2", "trainer.val_check_interval=2"))
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored[FORMAT_KEY] == FORMAT_VERSION
    config = stored["rcot_build_config"]
    names = [config["_target_"], config["transport_map"]["_target_"]]
    assert names == ["RCOTModule", "TwoPassMap"]
    assert config["map_optimizer"]["_target_"] in REGISTRY
    assert load_module(tmp_path / "checkpoints" / "last.ckpt").iteration == 1


def test_a_spec_builds_what_hydra_builds() -> None:
    torch.manual_seed(0)
    by_hydra = build_module(tiny_config())
    spec = check_spec(to_spec(tiny_config()))
    torch.manual_seed(0)
    by_spec = build_spec(spec)
    assert type(by_spec.transport_map) is type(by_hydra.transport_map)
    for (name, a), b in zip(
        by_hydra.state_dict().items(), by_spec.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    optimizer = by_spec._map_optimizer(by_spec.transport_map.parameters())
    assert type(optimizer).__name__ == "Adam" and optimizer.defaults["lr"] == 1e-4


# --------------------------------------------------------------------- every reader of a file
@pytest.fixture
def evil(tmp_path: Path, victim: Path) -> Path:
    """The issue's case: ``seed`` set to an interpolation that deletes the victim."""
    config = _config("top", interpolations(victim)["oc.create"])
    return save_checkpoint(tmp_path / "evil.ckpt", config)


def _expect(line: str, prog: str, ckpt: Path) -> None:
    assert line.startswith(f"{prog}: error: ckpt_path: {ckpt}: its stored model: seed=")
    assert "is an interpolation" in line


def test_restore_refuses(compose_config, capsys, tmp_path: Path, evil: Path) -> None:
    photo = image(tmp_path / "in.png")
    work = lambda: restore_files(  # noqa: E731
        compose_config("restore", f"ckpt_path={evil}", f"input={photo}", f"output={tmp_path / 'o'}")
    )
    code, line = one_line_exit("rcot-restore", work, capsys)
    assert code == 2
    _expect(line, "rcot-restore", evil)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_eval_refuses(compose_config, capsys, evil: Path) -> None:
    work = lambda: evaluate(compose_config("eval", f"ckpt_path={evil}", "split=val"))  # noqa: E731
    code, line = one_line_exit("rcot-eval", work, capsys)
    assert code == 2
    _expect(line, "rcot-eval", evil)


def test_export_refuses(compose_config, capsys, tmp_path: Path, evil: Path) -> None:
    out = tmp_path / "map.pt2"
    work = lambda: export_files(compose_config("export", f"ckpt_path={evil}", f"output={out}"))  # noqa: E731
    code, line = one_line_exit("rcot-export", work, capsys)
    assert code == 2
    _expect(line, "rcot-export", evil)
    assert not out.exists()


def test_train_resume_refuses(compose_train, capsys, evil: Path) -> None:
    code, line = one_line_exit(
        "rcot-train", lambda: run(compose_train(f"ckpt_path={evil}")), capsys
    )
    assert code == 2
    _expect(line, "rcot-train", evil)


def test_check_resumable_trusts_the_classes_of_the_run_s_own_config(tmp_path: Path) -> None:
    config = tiny_config() | {"transport_map": {"_target_": "tests.hostile.LocalMap", "width": 4}}
    module = build_module(config)
    ckpt = tmp_path / "own.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "optimizer_states": [],
            "rcot_build_config": module.build_config,
        },
        ckpt,
    )
    check_resumable(ckpt, module)  # the run's own config names tests.hostile
    with pytest.raises(RCOTError, match=r"trusted_targets=\[tests.hostile\]"):
        check_resumable(
            ckpt,
            build_module(tiny_config() | {"transport_map": {"_target_": "TwoPassMap", "dim": 4}}),
        )


def test_bundle_and_its_reader_refuse(tmp_path: Path, evil: Path, victim: Path) -> None:
    with pytest.raises(RCOTError, match="is an interpolation"):
        bundle(evil, tmp_path / "b.pt")  # the map's spec is checked; the rest is not copied
    config = _config("nested", interpolations(victim)["oc.create"])
    with pytest.raises(
        RCOTError, match=r"its stored model: transport_map.dim=.* is an interpolation"
    ):
        bundle(save_checkpoint(tmp_path / "m.ckpt", config), tmp_path / "b.pt")
    stored = {"format": 2, "transport_map": config["transport_map"], "state_dict": {}}
    with pytest.raises(RCOTError, match=r"b.pt: transport_map: dim="):
        map_from_bundle(stored, source="b.pt")
    assert not (tmp_path / "b.pt").exists()
