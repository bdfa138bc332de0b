"""``python -m rcot_lightning.train``: runs :func:`rcot_lightning.cli.train.main`."""

from rcot_lightning.cli.train import main

if __name__ == "__main__":
    main()
