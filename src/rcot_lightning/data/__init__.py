"""Data: degradations, image files, datasets and DataModules (knows nothing of the model)."""
