"""``python -m rcot_lightning.export``: runs :func:`rcot_lightning.cli.export.main`."""

from rcot_lightning.cli.export import main

if __name__ == "__main__":
    main()
