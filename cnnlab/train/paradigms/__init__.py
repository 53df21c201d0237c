"""Training paradigms beyond one supervised run: distillation, ensembles, ..."""
