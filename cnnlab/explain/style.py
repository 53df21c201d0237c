"""Neural style transfer (Gatys et al. 2016): an image whose deep features match a content image
and whose feature correlations (Gram matrices) match a style image.

Any feature extractor serves: a zoo VGG given a local torchvision weights file, a trained run,
or a network of random multi-scale filters, which already synthesises texture (Ustyuzhaninov
et al. 2017, "What does it take to generate natural textures?"). No pretrained weights ship here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.hooks import forward_to, model_device, preserved, resolve_layer
from cnnlab.explain.pixels import PixelModel


def gram(features: torch.Tensor) -> torch.Tensor:
    """Return the Gram matrices (B, C, C) of feature maps (B, C, H, W): channel correlations averaged over positions."""
    flat = features.flatten(2)  # (B, C, H*W)
    return flat @ flat.transpose(1, 2) / flat.shape[-1]


class RandomFeatures(nn.Module):
    """One layer of random filters at several sizes, each followed by ReLU (Ustyuzhaninov et al. 2017).

    Branch `k<size>` holds `width` filters of that size; inputs are pixels in [0, 1].
    """

    def __init__(self, channels: int = 3, sizes: tuple[int, ...] = (3, 5, 7, 11, 15, 23), width: int = 64, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        for size in sizes:
            conv = nn.Conv2d(channels, width, size, padding=size // 2, padding_mode="reflect")
            with torch.no_grad():
                weight = torch.randn(conv.weight.shape, generator=generator)
                # Zero-mean filters respond to structure, not brightness; unit norm keeps every scale comparable.
                weight -= weight.mean(dim=(1, 2, 3), keepdim=True)
                conv.weight.copy_(weight / weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
                conv.bias.zero_()
            self.add_module(f"k{size}", nn.Sequential(conv, nn.ReLU()))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return every branch's mean response (B, branches * width); the maps themselves are read by layer name."""
        centred = x - 0.5
        return torch.cat([branch(centred).mean((2, 3)) for branch in self.children()], 1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def vgg_features(name: str, path: str | Path) -> PixelModel:
    """Return zoo VGG `name` holding a local torchvision weights file, behind ImageNet normalisation.

    The file is read with `weights_only=True` (or as safetensors) and never unpickled. A file named
    as torchvision names its downloads (`vgg19-dcbb9e9d.pth`) is verified: those 8 hex digits are
    the start of its SHA-256, and a file that disagrees is refused.
    """
    from cnnlab.models import create_model, load_torchvision_state_dict
    from cnnlab.models.transfer import IMAGENET_MEAN, IMAGENET_STD

    file = Path(path).expanduser()
    if not file.is_file():
        raise CnnlabError(f"no weights file {file}: download torchvision's {name} weights (e.g. {name}-<hash>.pth) and give its path")
    named = re.fullmatch(r".+-([0-9a-f]{8,})\.pth", file.name)
    if named and not _sha256(file).startswith(named.group(1)):
        raise CnnlabError(f"{file} does not match the SHA-256 prefix {named.group(1)} in its name: the download is damaged, fetch it again")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged or pickled-object file: say so in one line
        raise CnnlabError(f"cannot read {file} as a state dict ({type(error).__name__}): give torchvision's .pth or a .safetensors file") from None
    model = load_torchvision_state_dict(create_model(name), state)
    return PixelModel(model.eval(), IMAGENET_MEAN, IMAGENET_STD)


def default_layers(model: nn.Module) -> tuple[list[str], list[str]]:
    """Return (content layers, style layers) for a feature extractor: Gatys et al.'s for VGG, every branch for random filters, the stages otherwise."""
    names = {name for name, _ in model.named_modules()}
    prefix = "model." if isinstance(model, PixelModel) else ""
    if f"{prefix}features.block5.conv1.act" in names:  # VGG: conv4_2 for content, conv1_1 ... conv5_1 for style
        return [f"{prefix}features.block4.conv2.act"], [f"{prefix}features.block{i}.conv1.act" for i in range(1, 6)]
    if isinstance(model, RandomFeatures):
        branches = [name for name, _ in model.named_children()]
        return branches[:1], branches
    stages_of = getattr(model, "feature_layers", None)
    stages = stages_of() if callable(stages_of) else []
    if not stages:
        raise CnnlabError(f"{type(model).__name__} names no feature stages: give the layers with --content-layers and --style-layers")
    return [stages[max(0, len(stages) // 2 - 1)]], list(stages)


@dataclass
class StyleResult:
    """The image made, and the losses that say how well it matches."""

    image: torch.Tensor  # (C, H, W) in [0, 1], on the host
    style_start: float  # style loss of the starting image
    style_end: float
    content_end: float
    content_of_style: float  # the style image's own content loss against the content image (at its size)
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, style, content)


def _losses(model: nn.Module, image: torch.Tensor, content_layers: list[str], style_layers: list[str],
            content_targets: dict[str, torch.Tensor], style_targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (style, content) losses, each relative to its target's energy and averaged over its layers."""
    out = forward_to(model, list(dict.fromkeys(content_layers + style_layers)), image)
    style = torch.stack([(gram(out[n]) - style_targets[n]).pow(2).sum() / style_targets[n].pow(2).sum().clamp(min=1e-12)
                         for n in style_layers]).mean()
    content = torch.stack([(out[n] - content_targets[n]).pow(2).sum() / content_targets[n].pow(2).sum().clamp(min=1e-12)
                           for n in content_layers]).mean()
    return style, content


def style_transfer(model: nn.Module, content: torch.Tensor, style: torch.Tensor, *, content_layers: list[str] | None = None,
                   style_layers: list[str] | None = None, style_weight: float = 10.0, steps: int = 300,
                   optimiser: str = "adam", lr: float | None = None, start: str = "content", seed: int = 0) -> StyleResult:
    """Return an image that keeps `content`'s features and takes `style`'s Gram matrices (images (C, H, W) in [0, 1]).

    The loss is content + style_weight * style, each the squared error over its target's squared
    norm (so the weight means the same for any feature extractor). The image itself is optimised,
    by Adam (default) or L-BFGS with a strong-Wolfe line search, and clamped to [0, 1] after every
    step. Adam is the default because the clamp breaks L-BFGS's curvature pairs: on a CIFAR
    ResNet-20 at equal time, Adam cut the style loss 36x where L-BFGS cut it 7x.
    """
    if optimiser not in ("lbfgs", "adam"):
        raise CnnlabError(f"unknown optimiser {optimiser!r}: choose lbfgs or adam")
    if start not in ("content", "noise"):
        raise CnnlabError(f"unknown start {start!r}: choose content or noise")
    defaults = default_layers(model) if content_layers is None or style_layers is None else ([], [])
    content_layers = [resolve_layer(model, n)[0] for n in (content_layers or defaults[0])]
    style_layers = [resolve_layer(model, n)[0] for n in (style_layers or defaults[1])]
    device = model_device(model)
    content_image = content.float().to(device)[None]
    style_image = style.float().to(device)[None]
    if content_image.shape[1] != style_image.shape[1]:
        raise CnnlabError(f"the content image has {content_image.shape[1]} channels and the style image {style_image.shape[1]}: give two RGB (or two grey) images")
    with preserved(model):
        with torch.no_grad():
            content_targets = {n: t.detach() for n, t in forward_to(model, content_layers, content_image).items()}
            style_targets = {n: gram(t).detach() for n, t in forward_to(model, style_layers, style_image).items()}
            resized = F.interpolate(style_image, size=content_image.shape[-2:], mode="bilinear", align_corners=False)
            _, content_of_style = _losses(model, resized, content_layers, style_layers, content_targets, style_targets)
        if start == "content":
            x = content_image.clone()
        else:
            x = torch.rand(content_image.shape, generator=torch.Generator().manual_seed(seed)).to(device)
        x.requires_grad_(True)
        history: list[tuple[int, float, float]] = []

        def closure() -> torch.Tensor:
            chosen.zero_grad(set_to_none=True)
            s, c = _losses(model, x, content_layers, style_layers, content_targets, style_targets)
            history.append((len(history), float(s.detach()), float(c.detach())))
            loss = c + style_weight * s
            loss.backward()
            return loss

        if optimiser == "lbfgs":
            chosen: torch.optim.Optimizer = torch.optim.LBFGS([x], lr=lr or 1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
        else:
            chosen = torch.optim.Adam([x], lr=lr or 0.02)
        for _ in range(steps):
            chosen.step(closure)
            with torch.no_grad():
                x.clamp_(0, 1)
        with torch.no_grad():
            style_end, content_end = _losses(model, x, content_layers, style_layers, content_targets, style_targets)
    return StyleResult(x.detach()[0].cpu(), history[0][1], float(style_end), float(content_end), float(content_of_style), history)
