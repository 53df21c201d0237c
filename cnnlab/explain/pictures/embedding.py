"""Penultimate features of a data set, embedded in 2-D by PCA or t-SNE (scikit-learn) and coloured by class."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.hooks import model_device, preserved


def penultimate(model: nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Return the input (N, D) of the model's last Linear layer for every image of the batches, on the host."""
    last = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not last:
        raise CnnlabError(f"{type(model).__name__} has no Linear layer whose input is the penultimate feature")
    rows: list[torch.Tensor] = []
    handle = last[-1].register_forward_pre_hook(lambda _m, inputs: rows.append(inputs[0].detach().flatten(1).float().cpu()))
    try:
        with preserved(model), torch.no_grad():
            device = model_device(model)
            for batch in batches:
                model((batch[0] if isinstance(batch, tuple | list) else batch).to(device))
    finally:
        handle.remove()
    if not rows:
        raise CnnlabError("the data set is empty: give images to embed")
    return torch.cat(rows)


def embed(features: torch.Tensor, method: str = "pca", seed: int = 0) -> torch.Tensor:
    """Return 2-D coordinates (N, 2) of features (N, D) by PCA or t-SNE."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    data = features.double().numpy()
    if min(data.shape) < 2 or (method == "tsne" and len(data) < 4):
        raise CnnlabError(f"cannot embed {data.shape[0]} feature vectors of size {data.shape[1]}: give more images (--count)")
    if method == "pca":
        points = PCA(n_components=2, random_state=seed).fit_transform(data)
    elif method == "tsne":
        # t-SNE on the first 50 principal components, as van der Maaten & Hinton (2008) reduce first.
        reduced = PCA(n_components=min(50, *data.shape), random_state=seed).fit_transform(data)
        points = TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(data) - 1) / 3), random_state=seed).fit_transform(reduced)
    else:
        raise CnnlabError(f"unknown embedding {method!r}: choose pca or tsne")
    return torch.from_numpy(points).float()


def save_embedding(points: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], path: Path, title: str) -> Path:
    """Write the 2-D points as a scatter plot coloured by class, with a legend; return the path."""
    from cnnlab.explain.pictures.render import _pyplot

    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7, 6))
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for index, name in enumerate(classes):
        chosen = labels == index
        if chosen.any():
            axis.scatter(points[chosen, 0], points[chosen, 1], s=4, color=colours(index % colours.N), label=name)
    axis.legend(markerscale=3, fontsize=8, loc="best")
    axis.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
