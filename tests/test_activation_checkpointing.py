"""Activation checkpointing of the map's transformer blocks changes memory, not results."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from rcot_lightning.checkpoints.load import build_module
from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
from rcot_lightning.errors import RCOTError
from rcot_lightning.nets import Potential, RestormerUNet, TwoPassMap
from rcot_lightning.nets.restormer import TransformerStage, set_checkpointing
from rcot_lightning.objective import FROTObjective


def _map_gradients(checkpointing: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and weight gradients of one full RCOT iteration's losses, in float64.

    Both losses run: the potential loss (its gradient penalty differentiates phi twice, through
    an input built from the detached T(y)) and the map loss through phi(T(y)).
    """
    torch.manual_seed(0)
    tmap = TwoPassMap(**MAP_PRESETS["tiny"], checkpointing=checkpointing).double()
    phi = Potential(**POTENTIAL_PRESETS["tiny"]).double()
    objective = FROTObjective()
    generator = torch.Generator().manual_seed(1)
    y = torch.rand(2, 3, 24, 24, generator=generator, dtype=torch.float64)
    x = torch.rand(2, 3, 24, 24, generator=generator, dtype=torch.float64)
    restored = tmap(y)
    phi_loss, _ = objective.potential_loss(phi, x, restored.detach(), torch.tensor([0.3, 0.7]))
    phi_loss.backward()
    map_loss, _ = objective.map_loss(y, restored, phi(restored), degradation=torch.zeros(2))
    map_loss.backward()
    grads = {name: p.grad.clone() for name, p in tmap.named_parameters() if p.grad is not None}
    grads.update({f"phi.{n}": p.grad.clone() for n, p in phi.named_parameters()})
    return restored.detach(), grads


def test_checkpointing_gives_the_same_output_and_gradients() -> None:
    out_plain, grads_plain = _map_gradients(False)
    out_ckpt, grads_ckpt = _map_gradients(True)
    torch.testing.assert_close(out_ckpt, out_plain, rtol=0, atol=1e-12)
    assert grads_ckpt.keys() == grads_plain.keys()
    # Every map weight got a gradient (the blocks were not cut out of the graph).
    assert sum(1 for name in grads_plain if not name.startswith("phi.")) == sum(
        1 for _ in TwoPassMap(**MAP_PRESETS["tiny"]).parameters()
    )
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_checkpointing_recomputes_the_blocks_in_backward() -> None:
    """The flag really checkpoints: the blocks run again during backward, and only with grad."""
    net = RestormerUNet(**MAP_PRESETS["tiny"], checkpointing=True)
    calls = []
    block = next(m for m in net.modules() if isinstance(m, TransformerStage))[0]
    # A pre-hook: the recomputation stops early, once the tensors backward needs are rebuilt.
    block.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    net(torch.rand(1, 3, 16, 16)).sum().backward()
    assert len(calls) == 2  # the forward pass, then the recomputation in backward
    calls.clear()
    with torch.no_grad():
        net(torch.rand(1, 3, 16, 16))
    assert len(calls) == 1


def test_checkpointing_keeps_the_state_dict_names() -> None:
    plain = TwoPassMap(**MAP_PRESETS["tiny"])
    ckpt = TwoPassMap(**MAP_PRESETS["tiny"], checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())  # strict: same keys either way
    assert all(s.checkpointing for s in ckpt.modules() if isinstance(s, TransformerStage))
    assert not any(s.checkpointing for s in plain.modules() if isinstance(s, TransformerStage))


def test_checkpointing_flag_must_be_a_bool() -> None:
    with pytest.raises(RCOTError, match="checkpointing"):
        set_checkpointing(TwoPassMap(**MAP_PRESETS["tiny"]), "yes")  # type: ignore[arg-type]


def test_config_key_turns_checkpointing_on(compose_train: Callable[..., DictConfig]) -> None:
    plain = compose_train()
    assert plain.model.transport_map.checkpointing is False
    cfg = compose_train("model.transport_map.checkpointing=true")
    module = build_module(OmegaConf.to_container(cfg.model, resolve=True))  # type: ignore[arg-type]
    stages = [m for m in module.transport_map.modules() if isinstance(m, TransformerStage)]
    assert stages and all(stage.checkpointing for stage in stages)


def test_cpu_fast_hardware_is_bf16_on_cpu(compose_train: Callable[..., DictConfig]) -> None:
    cfg = compose_train("hardware=cpu_fast")
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.devices == 1
