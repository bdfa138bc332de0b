"""Rewrite an old checkpoint so it loads weights-only (``rcot-upgrade-checkpoint FILE``).

Checkpoints of rcot-lightning 0.3 and older could hold OmegaConf nodes (a ``DictConfig`` as the
stored model config or as hyper-parameters), which ``torch.load(weights_only=True)`` refuses;
the entry points then refuse the file. Reading such a file means unpickling it in full, which
can run code, so this command needs ``--trust-checkpoint``: run it once, on files whose source
you trust. It writes the same content as plain dicts, lists and tensors (atomically, in place
unless ``--output`` names another file), checks that the result loads weights-only, and its
stored config is checked like any checkpoint's when it is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rcot_lightning.checkpoints.upgrade import upgrade_file
from rcot_lightning.errors import RCOTError

__all__ = ["main"]

PROG = "rcot-upgrade-checkpoint"


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``rcot-upgrade-checkpoint``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Rewrite old rcot-lightning checkpoints so they load weights-only.",
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="the .ckpt files")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="required: reading an old file unpickles it in full, which can run code; "
        "pass it only for files whose source you trust",
    )
    parser.add_argument("--output", type=Path, help="write here instead (one input only)")
    args = parser.parse_args(argv)
    if not args.trust_checkpoint:
        parser.error(
            "reading an old checkpoint unpickles it in full, which can run code; pass "
            "--trust-checkpoint if you trust where the file came from"
        )
    if args.output is not None and len(args.checkpoints) > 1:
        parser.error("--output takes one checkpoint")
    try:
        for path in args.checkpoints:
            written = upgrade_file(path, args.output)
            sys.stdout.write(f"{written}: rewritten; it loads weights-only\n")
    except RCOTError as err:
        parser.exit(2, f"{PROG}: error: {err}\n")


if __name__ == "__main__":
    main()
