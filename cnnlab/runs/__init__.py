"""Runs: the recipe, the typed data.json, the run directory, its checkpoints, and load_run to read one."""
