"""Batch augmentation on the training device: ops that a recipe lists as `augment: [{op: ...}, ...]`."""

from cnnlab.data.augment.ops import OPS, AugmentOp, Cutout, Flip, Translate, augment_batch

__all__ = ["OPS", "AugmentOp", "Cutout", "Flip", "Translate", "augment_batch"]
