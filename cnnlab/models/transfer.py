"""Bring torchvision weights into zoo models: a state dict mapped entry by entry.

Zoo models register their layers in torchvision's order, so the two state dicts list the same
tensors in the same order under different names; the mapping checks every shape on the way.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import nn

from cnnlab.errors import CnnlabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet preprocessing
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_torchvision_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    transform_input: bool | None = None,
    input_size: int = 224,
) -> nn.Module:
    """Return `model` holding a torchvision state dict's tensors, with torchvision's preprocessing.

    A state dict does not carry `transform_input` (GoogLeNet and Inception v3 set it to True
    with their ImageNet weights): pass it when the weights came with it. BatchNorm eps values
    are part of each zoo builder already (1e-3 where torchvision uses 1e-3).
    """
    ours = model.state_dict()
    theirs, dropped = _without_absent_aux_heads(model, state_dict)
    if dropped:
        # torchvision builds GoogLeNet / Inception v3 with the aux heads to load its weights and
        # removes them afterwards; a model built without them takes the rest the same way.
        warnings.warn(
            f"dropped {sum(dropped.values())} tensors of the auxiliary heads "
            f"{', '.join(sorted(dropped))}, which {type(model).__name__} was built without "
            "(torchvision drops them too); build it with aux_logits=True to keep them",
            stacklevel=2,
        )
    if len(theirs) != len(ours):
        raise CnnlabError(
            f"the state dict holds {len(theirs)} tensors but {type(model).__name__} has {len(ours)}: "
            "is it the same architecture and variant (aux heads, BN)?"
        )
    mapped = {}
    for (our_key, our_value), (their_key, their_value) in zip(ours.items(), theirs, strict=True):
        if our_value.shape != their_value.shape:
            raise CnnlabError(
                f"{their_key} has shape {tuple(their_value.shape)} but {our_key} needs "
                f"{tuple(our_value.shape)}: the weights are for another variant"
            )
        mapped[our_key] = their_value
    model.load_state_dict(mapped)
    if transform_input is not None:
        if not hasattr(model, "transform_input"):
            raise CnnlabError(f"{type(model).__name__} has no transform_input option")
        model.transform_input = transform_input
    model.pretrained_cfg = {
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "input_size": (3, input_size, input_size),
        "interpolation": "bilinear",
    }
    return model


def _without_absent_aux_heads(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> tuple[list[tuple[str, torch.Tensor]], dict[str, int]]:
    """Return the state dict's items less auxiliary heads the model lacks, and {head: tensors dropped}."""
    # Names differ between the zoo and torchvision (aux vs AuxLogits): only a model with no aux
    # head at all drops the file's.
    has_aux = any(name.lower().startswith("aux") for name, child in model.named_children() if child is not None)
    kept, dropped = [], {}
    for key, value in state_dict.items():
        head = key.split(".", 1)[0]
        if head.lower().startswith("aux") and not has_aux:
            dropped[head] = dropped.get(head, 0) + 1
        else:
            kept.append((key, value))
    return kept, dropped
