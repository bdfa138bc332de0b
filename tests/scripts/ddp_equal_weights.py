"""Train RCOTModule with real CPU DDP processes and save each rank's weights.

Run as ``python ddp_equal_weights.py OUT_DIR [STRATEGY]``; Lightning's popen launcher re-runs
this script for rank 1, which is why it is a script and not a pytest function.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_module import ConvMap, ConvPotential, make_batch

from rcot_lightning.module import RCOTModule


class Batches(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = make_batch(i, batch=1, paired=[i % 2 == 0])
        return {k: v[0] for k, v in item.items()}


def main() -> None:
    out = Path(sys.argv[1])
    strategy = sys.argv[2] if len(sys.argv) > 2 else "ddp_find_unused_parameters_true"
    L.seed_everything(0)
    module = RCOTModule(ConvMap(), ConvPotential(), n_critic=2, ema_decay=0.9)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(Batches(), batch_size=2))
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(
        {"state": state, "iteration": module.iteration, "world": trainer.world_size},
        out / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main()
