"""Rewrite an old checkpoint so it loads weights-only (``rcot-upgrade-checkpoint FILE``).

Checkpoints of rcot-lightning 0.3 and older could hold OmegaConf nodes (a ``DictConfig`` as the
stored model config or as hyper-parameters), which ``torch.load(weights_only=True)`` refuses;
the entry points then refuse the file. Reading such a file means unpickling it in full, which
can run code, so this command needs ``--trust-checkpoint``: run it once, on files whose source
you trust. It writes the same content as plain dicts, lists and tensors, atomically, checks
that the result loads weights-only, and its stored config is checked like any checkpoint's
when it is loaded.

It never writes over a file it did not read as a checkpoint. By default it rewrites each file
in place (the file it read; no flag needed). ``--output`` names another file: one that exists
is kept unless ``--overwrite`` is given, and even then it is replaced only when it reads
(weights-only) as a checkpoint itself, so a mistyped ``--output`` never costs a file.

Every error is one line, ``rcot-upgrade-checkpoint: error: <what and what to do>``, exit
status 2 (a missing file, a folder, junk bytes, a pickle that is not a checkpoint, a place
that cannot be written); anything unexpected is one line naming the log file that holds its
traceback, exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

PROG = "rcot-upgrade-checkpoint"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Rewrite old rcot-lightning checkpoints so they load weights-only "
        "(in place, or into --output).",
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="the .ckpt files")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="required: reading an old file unpickles it in full, which can run code; "
        "pass it only for files whose source you trust",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="write here instead of in place (one input only); an existing file is kept "
        "unless --overwrite is given",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output, which must itself be a checkpoint (any other "
        "file is never replaced)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``rcot-upgrade-checkpoint``.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Raises:
        SystemExit: 2 for a usage or user error (one line on stderr), 1 for anything
            unexpected (one line naming the traceback's log file), 130 for Ctrl-C.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.trust_checkpoint:
        parser.error(
            "reading an old checkpoint unpickles it in full, which can run code; pass "
            "--trust-checkpoint if you trust where the file came from"
        )
    if args.output is not None and len(args.checkpoints) > 1:
        parser.error("--output takes one checkpoint")

    from rcot_lightning.checkpoints.upgrade import upgrade_file
    from rcot_lightning.cli.app import exit_on_user_error

    with exit_on_user_error(PROG):
        for path in args.checkpoints:
            written = upgrade_file(path, args.output, overwrite=args.overwrite)
            sys.stdout.write(f"{written}: rewritten; it loads weights-only\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
