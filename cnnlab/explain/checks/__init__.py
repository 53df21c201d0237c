"""Checks of whether to trust an explanation: sanity (randomisation tests) and faithfulness (deletion / insertion)."""
