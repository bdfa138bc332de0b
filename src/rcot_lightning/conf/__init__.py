"""Hydra configs of rcot-lightning (shipped in the wheel; see train.yaml)."""
