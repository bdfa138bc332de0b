"""``python -m rcot_lightning.eval``: runs :func:`rcot_lightning.cli.eval.main`."""

from rcot_lightning.cli.eval import main

if __name__ == "__main__":
    main()
