"""``python -m rcot_lightning.demo``: runs :func:`rcot_lightning.cli.demo.main`."""

from rcot_lightning.cli.demo import main

if __name__ == "__main__":
    main()
