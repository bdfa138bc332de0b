"""Train RCOTModule on fixed samples with N CPU processes and per-device batch b; save weights.

Run as ``python ddp_equivalence.py OUT_DIR DEVICES BATCH paired|unpaired``. Every sample carries
its ``sample_key``, so the gradient penalty draws the same mixing weight for a sample whichever
rank sees it; with DDP's gradient average over ranks, 2 processes x batch b must then train like
1 process x batch 2b on the same samples.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_module import ConvMap, ConvPotential, make_batch

from rcot_lightning.module import RCOTModule
from rcot_lightning.objective import FROTObjective


class Samples(Dataset):
    def __init__(self, paired: bool) -> None:
        self.paired = paired

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        batch = make_batch(i, batch=1, paired=[self.paired])
        # float64: Adam and RMSprop divide by the gradient's root mean square, so a float32
        # round-off in a near-zero gradient can flip a whole step; in float64 only the
        # algorithm can make the two runs differ.
        item = {k: v[0].double() if v.is_floating_point() else v[0] for k, v in batch.items()}
        if not self.paired:
            del item["target"], item["paired"]
        item["sample_key"] = torch.tensor(i, dtype=torch.long)
        return item


def main() -> None:
    out, devices, batch, mode = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    L.seed_everything(0)
    module = RCOTModule(
        ConvMap(),
        ConvPotential(),
        FROTObjective(supervised_weight=10.0),
        map_optimizer=partial(torch.optim.Adam, lr=1e-3),
        potential_optimizer=partial(torch.optim.RMSprop, lr=1e-3),
        n_critic=2,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_find_unused_parameters_true" if devices > 1 else "auto",
        max_epochs=1,
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    # Rank r of N takes samples r, r + N, ...: iteration i of the N processes then sees exactly
    # the samples of iteration i of one process with an N times larger batch. (Lightning's own
    # distributed sampler would shuffle them.) Rank 0 is the launching process, without
    # LOCAL_RANK; Lightning sets it for the processes it starts.
    data = Samples(mode == "paired")
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    sampler = DistributedSampler(data, num_replicas=devices, rank=rank, shuffle=False)
    trainer.fit(module, DataLoader(data, batch_size=batch, sampler=sampler))
    if trainer.global_rank == 0:
        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        torch.save({"state": state, "iteration": module.iteration}, out / f"{mode}{devices}.pt")


if __name__ == "__main__":
    main()
