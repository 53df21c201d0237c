"""Training: the loop, and the run directory it writes."""
