"""Neural style transfer (Gatys et al. 2016): an image whose deep features match a content image
and whose feature correlations (Gram matrices) match a style image.

Any feature extractor serves: a zoo VGG given a local torchvision weights file, a trained run,
or a network of random multi-scale filters, which already synthesises texture (Ustyuzhaninov
et al. 2017, "What does it take to generate natural textures?"). No pretrained weights ship here.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.hooks import forward_to, model_device, preserved, resolve_layer
from cnnlab.explain.kit.pixels import PixelModel


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


def _check_settings(style_weight: float, steps: int, lr: float | None, optimiser: str, start: str) -> None:
    """Refuse settings that could only end in a traceback or a NaN image, each with the fix."""
    if optimiser not in ("lbfgs", "adam"):
        raise CnnlabError(f"unknown optimiser {optimiser!r}: choose lbfgs or adam")
    if start not in ("content", "noise"):
        raise CnnlabError(f"unknown start {start!r}: choose content or noise")
    if not math.isfinite(style_weight) or style_weight < 0:
        raise CnnlabError(f"style weight {style_weight} is not a finite number >= 0: give one such as 10 (--style-weight)")
    if lr is not None and (not math.isfinite(lr) or lr <= 0):
        raise CnnlabError(f"learning rate {lr} is not a finite number > 0: give one such as 0.02, or none for the default")
    if steps < 1:
        raise CnnlabError(f"{steps} steps: give at least 1 (--steps)")


def _check_images(content: torch.Tensor, style: torch.Tensor) -> None:
    """Refuse images (1, C, H, W) that hold no texture to match or no finite pixels."""
    if content.shape[1] != style.shape[1]:
        raise CnnlabError(f"the content image has {content.shape[1]} channels and the style image {style.shape[1]}: give two RGB (or two grey) images")
    for name, image in (("content", content), ("style", style)):
        # A Gram matrix of a single position is one outer product, not a texture: 2x2 is the least that has one.
        if min(image.shape[-2:]) < 2:
            raise CnnlabError(f"the {name} image is {image.shape[-2]}x{image.shape[-1]} pixels: give images of at least 2x2 (--size)")
        if not torch.isfinite(image).all():
            raise CnnlabError(f"the {name} image holds NaN or infinite pixels: give pixels in [0, 1]")


def _input_channels(model: nn.Module) -> int | None:
    """Return the channels the model's first convolution takes, or None when it has none."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else first.in_channels


def _network_view(model: nn.Module, image_channels: int) -> tuple[int, Callable[[torch.Tensor], torch.Tensor]]:
    """Return (channels of the image optimised, map from that image to the network's input)."""
    from cnnlab.data.augment.colour import grayscale

    wanted = _input_channels(model) or image_channels
    if wanted == image_channels:
        return image_channels, lambda x: x
    if wanted == 1 and image_channels == 3:
        # A grey run sees only luma, so only luma is optimised: it is also its own network input.
        return 1, grayscale
    if wanted == 3 and image_channels == 1:
        return 1, lambda x: x.expand(-1, 3, -1, -1)  # (B, 3, H, W), grey repeated
    raise CnnlabError(f"{type(model).__name__} takes {wanted}-channel images and these have {image_channels}: give RGB or grey images")


@contextmanager
def _fitting(model: nn.Module, *images: torch.Tensor) -> Iterator[None]:
    """Turn the extractor's own complaint about too small an input into one line naming the fix."""
    shape = min((image.shape for image in images), key=lambda s: min(s[-2:]))  # the smaller image is the one that failed
    try:
        yield
    except torch.OutOfMemoryError:
        raise  # too large, not too small: the message must not say the opposite
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        if not any(word in first for word in ("size", "Padding", "shape", "dimension", "xpected")):
            raise
        raise CnnlabError(f"{type(model).__name__} cannot run on {shape[-2]}x{shape[-1]} images ({first}): give larger images (--size)") from None


def style_transfer(model: nn.Module, content: torch.Tensor, style: torch.Tensor, *, content_layers: list[str] | None = None,
                   style_layers: list[str] | None = None, style_weight: float = 10.0, steps: int = 300,
                   optimiser: str = "adam", lr: float | None = None, start: str = "content", seed: int = 0) -> StyleResult:
    """Return an image that keeps `content`'s features and takes `style`'s Gram matrices (images (C, H, W) in [0, 1]).

    The loss is content + style_weight * style, each the squared error over its target's squared
    norm (so the weight means the same for any feature extractor). The image itself is optimised,
    by Adam (default) or L-BFGS with a strong-Wolfe line search, and clamped to [0, 1] after every
    step. Adam is the default because the clamp breaks L-BFGS's curvature pairs: on a CIFAR
    ResNet-20 at equal time, Adam cut the style loss 36x where L-BFGS cut it 7x.

    A grey extractor (a run trained on grey images) given RGB images matches their luma: the
    result keeps the content's colours and takes the optimised luma, as Gatys et al. 2017
    ("Controlling Perceptual Factors", luminance-only transfer) preserve colour. The image
    returned always has the content image's channels, so it sits beside its inputs.
    """
    _check_settings(style_weight, steps, lr, optimiser, start)
    defaults = default_layers(model) if content_layers is None or style_layers is None else ([], [])
    content_layers = [resolve_layer(model, n)[0] for n in (content_layers or defaults[0])]
    style_layers = [resolve_layer(model, n)[0] for n in (style_layers or defaults[1])]
    device = model_device(model)
    # Images read from files are permuted (H, W, C) buffers; L-BFGS flattens the gradient with .view, which needs them contiguous.
    content_image = content.float().to(device)[None].contiguous()
    style_image = style.float().to(device)[None].contiguous()
    _check_images(content_image, style_image)
    channels, to_network = _network_view(model, content_image.shape[1])
    with preserved(model):
        content_targets, style_targets, content_of_style = _targets(model, content_image, style_image, content_layers,
                                                                    style_layers, to_network)
        content_seen = content_image if channels == content_image.shape[1] else to_network(content_image)
        if start == "content":
            x = content_seen.clone(memory_format=torch.contiguous_format)
        else:
            x = torch.rand(content_seen.shape, generator=torch.Generator().manual_seed(seed)).to(device)
        x.requires_grad_(True)

        def losses(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return _losses(model, to_network(image), content_layers, style_layers, content_targets, style_targets)

        history = _optimise(x, losses, steps=steps, optimiser=optimiser, lr=lr, style_weight=style_weight)
        with torch.no_grad():
            if not torch.isfinite(x).all():  # clamp_ keeps NaN: a step that made one must not reach a PNG
                raise CnnlabError(f"the image became NaN (style weight {style_weight}, learning rate {lr or 'default'}): lower the style weight or the learning rate")
            style_end, content_end = _losses(model, to_network(x), content_layers, style_layers, content_targets, style_targets)
            image = x if channels == content_image.shape[1] else (content_image + x - content_seen).clamp(0, 1)
    return StyleResult(image.detach()[0].cpu(), history[0][1], float(style_end), float(content_end), float(content_of_style), history)


def _targets(model: nn.Module, content_image: torch.Tensor, style_image: torch.Tensor, content_layers: list[str],
             style_layers: list[str], to_network: Callable[[torch.Tensor], torch.Tensor]
             ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Return the content layers' maps of the content image, the style layers' Gram matrices, and the style image's content loss."""
    with torch.no_grad(), _fitting(model, content_image, style_image):
        content_targets = {n: t.detach() for n, t in forward_to(model, content_layers, to_network(content_image)).items()}
        style_maps = forward_to(model, style_layers, to_network(style_image))
        for name, maps in style_maps.items():
            if maps.ndim != 4:  # a Gram matrix correlates channels over positions: a vector has none
                raise CnnlabError(f"style layer {name} gives {tuple(maps.shape)} outputs, not (N, C, H, W) maps: "
                                  "choose convolutional layers (cnnlab summary lists them)")
        style_targets = {n: gram(t).detach() for n, t in style_maps.items()}
        resized = F.interpolate(style_image, size=content_image.shape[-2:], mode="bilinear", align_corners=False)
        _, content_of_style = _losses(model, to_network(resized), content_layers, style_layers, content_targets, style_targets)
    return content_targets, style_targets, content_of_style


def _optimise(x: torch.Tensor, losses: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], *, steps: int,
              optimiser: str, lr: float | None, style_weight: float) -> list[tuple[int, float, float]]:
    """Optimise the image `x` in place against content + style_weight * style, clamped to [0, 1]; return the loss history."""
    history: list[tuple[int, float, float]] = []

    def closure() -> torch.Tensor:
        chosen.zero_grad(set_to_none=True)
        s, c = losses(x)
        history.append((len(history), float(s.detach()), float(c.detach())))
        loss = c + style_weight * s
        if not math.isfinite(float(loss.detach())):
            raise CnnlabError(f"the loss became {float(loss.detach())} at evaluation {len(history)} (style weight {style_weight}, "
                              f"learning rate {lr or 'default'}): lower the style weight or the learning rate")
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
    return history
