"""The training sampler: a disjoint, deterministic shard per rank that carries the epoch.

Item randomness is seeded by ``(seed, epoch, index)`` (see :mod:`rcot_lightning.data.datasets`),
so the epoch must reach the dataset even inside persistent worker processes, where attributes
set on the dataset in the main process are never seen. The sampler runs in the main process
and Lightning calls its ``set_epoch`` every epoch, so it yields ``SampleKey(index, epoch)``.

It subclasses :class:`~torch.utils.data.DistributedSampler`, so Lightning keeps it instead of
injecting its own under DDP; we pass rank and world size from the trainer explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

from torch.utils.data import DistributedSampler

from rcot_lightning.data.datasets import SampleKey

__all__ = ["ShardedSampler"]


class ShardedSampler(DistributedSampler):
    """Shuffled (or ordered) indices of this rank's shard, as :class:`SampleKey` (index, epoch).

    Shards are disjoint (the tail that does not divide evenly is dropped), depend only on
    ``seed``, the epoch, the rank and the world size, and together cover the dataset.

    Args:
        dataset: any sized dataset.
        rank: this process's global rank.
        world_size: number of processes (devices x nodes).
        shuffle: reshuffle every epoch.
        seed: seed of the shuffle (combined with the epoch).

    Example:
        >>> a = ShardedSampler(range(10), rank=0, world_size=2, shuffle=False)
        >>> b = ShardedSampler(range(10), rank=1, world_size=2, shuffle=False)
        >>> b.set_epoch(3)
        >>> [key.item for key in a], list(b)[0]
        ([0, 2, 4, 6, 8], SampleKey(item=1, epoch=3))
    """

    def __init__(
        self,
        dataset: Sized,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,  # type: ignore[arg-type]  # only its length is used
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        epoch = self.epoch
        for index in super().__iter__():
            yield SampleKey(int(index), epoch)
