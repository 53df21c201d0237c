"""Data: sources and decoding, and the policy the engine applies (normalisation, placement, augmentation, TTA)."""
