"""Batch augmentation on the training device: ops that a recipe lists as `augment: [{op: ...}, ...]`.

Every op lives in one family module; OPS maps each recipe name to its class, and AugmentOp is
the tagged union the recipe types its list with.
"""

import functools
import operator

from cnnlab.data.augment.base import SIZED, DataFacts, Op
from cnnlab.data.augment.filters import (
    Emboss,
    GaussianBlur,
    GaussianNoise,
    SaltPepper,
    Sharpen,
    Superpixels,
)
from cnnlab.data.augment.geometric import (
    CenterCrop,
    Flip,
    RandomCrop,
    ResizedCrop,
    Translate,
    VerticalFlip,
)
from cnnlab.data.augment.mixing import CutMix, MixUp
from cnnlab.data.augment.occlusion import CoarseDropout, Cutout, RandomErasing
from cnnlab.data.augment.photometric import (
    AutoContrast,
    Brightness,
    ColorJitter,
    Contrast,
    Equalize,
    Gamma,
    Grayscale,
    Hue,
    Invert,
    PCALighting,
    Posterize,
    Saturation,
    Sharpness,
    Solarize,
)
from cnnlab.data.augment.pipeline import Augmentation, augment_batch, facts_of, refuse_uncarried
from cnnlab.data.augment.policies import AutoAugment, RandAugment, TrivialAugment
from cnnlab.data.augment.warps import Elastic, Perspective, Rotate, Scale, Shear
from cnnlab.data.augment.weather import Clouds, Fog, Rain, Snow

FAMILIES: dict[str, tuple[type, ...]] = {
    "geometric": (Flip, VerticalFlip, Translate, ResizedCrop, Scale, Rotate, Shear, Perspective, Elastic, CenterCrop,
                  RandomCrop),
    "photometric": (Brightness, Contrast, Saturation, Hue, ColorJitter, Gamma, Invert, Solarize, Posterize,
                    Grayscale, Equalize, AutoContrast, Sharpness, PCALighting),
    "filters and noise": (GaussianBlur, Sharpen, Emboss, GaussianNoise, SaltPepper, Superpixels),
    "occlusion": (Cutout, RandomErasing, CoarseDropout),
    "weather": (Fog, Clouds, Snow, Rain),
    "mixing": (MixUp, CutMix),
    "policies": (AutoAugment, RandAugment, TrivialAugment),
}
OPS: dict[str, type] = {op.tag: op for family in FAMILIES.values() for op in family}
AugmentOp = functools.reduce(operator.or_, OPS.values())

__all__ = ["FAMILIES", "OPS", "Augmentation", "AugmentOp", "CutMix", "Cutout", "DataFacts", "Flip", "MixUp", "Op",
           "SIZED", "Translate", "augment_batch", "facts_of", "refuse_uncarried"]
