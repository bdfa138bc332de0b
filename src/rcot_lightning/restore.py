"""``python -m rcot_lightning.restore``: runs :func:`rcot_lightning.cli.restore.main`."""

from rcot_lightning.cli.restore import main

if __name__ == "__main__":
    main()
