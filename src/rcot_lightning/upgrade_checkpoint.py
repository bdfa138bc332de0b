"""``python -m rcot_lightning.upgrade_checkpoint``: ``rcot_lightning.cli.upgrade_checkpoint``."""

from rcot_lightning.cli.upgrade_checkpoint import main

if __name__ == "__main__":
    main()
