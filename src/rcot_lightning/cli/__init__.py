"""The entry-point layer: ``rcot-train``, ``rcot-eval``, ``rcot-restore``, ``rcot-export``,
``rcot-demo`` and ``rcot-upgrade-checkpoint``, and what only they need (the Trainer builder and
the DDP launcher, run folders, one-line errors and crash logs, pre-flight checks of config values,
the choice of map, the recipe checks).

It imports the rest of the package; nothing in the package imports it.
``python -m rcot_lightning.<train|eval|restore|export|demo>`` runs the matching module here.
"""
