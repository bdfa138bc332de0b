"""Stable seeds: one derivation for every random stream that must be reproducible.

Python's ``hash`` of a tuple changes between processes for strings (hash randomisation), so it
cannot seed anything that a resumed run, another DDP rank or another machine must redraw
identically. Every seeded stream of the library (data crops and degradations, the gradient
penalty's mixing weights) derives its seed here.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "seeded_generator"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, identical in every process (unlike ``hash``).

    Example:
        >>> derive_seed(0, "chelsea") == derive_seed(0, "chelsea") != derive_seed(1, "chelsea")
        True
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def seeded_generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded by :func:`derive_seed` of ``parts``.

    Example:
        >>> a = torch.rand(2, generator=seeded_generator(0, "alpha"))
        >>> torch.equal(a, torch.rand(2, generator=seeded_generator(0, "alpha")))
        True
    """
    return torch.Generator().manual_seed(derive_seed(*parts))
