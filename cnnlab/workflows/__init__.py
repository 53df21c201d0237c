"""Everything made of several runs: the course's experiments, Noisy Student's rounds, ensembles, the TTA table.

One floor above `train`, which builds and runs one run: a workflow chains or compares runs and
writes a table of them.
"""
