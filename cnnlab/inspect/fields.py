"""Receptive fields carried through a forward pass by the index mapping of each dispatched op.

Every tensor that descends from the input image carries a `Layout`: for each of its dimensions,
the factors it is made of (outermost first), each with the receptive field of the input axis it
indexes, or None for batch and channel factors. A view that flattens H and W into tokens keeps
both factors; a permute reorders dimensions; a reshape back splits the factors again. So a field
is tracked per spatial axis through channels-last blocks (ConvNeXt), channel shuffles
(ShuffleNet), chunks and splits, and concatenations, without guessing from module boundaries.

Rules (the README states them too):
- Where paths meet (addition, concatenation), each axis takes the union of the inputs' extents
  (an Inception 1x3 and 3x1 branch concatenated see 3x3). Inputs broadcast along an axis (an SE
  gate of shape (B, C, 1, 1)) do not widen it: gates are held constant.
- Global pooling, and any reduction or contraction over a spatial axis (a Linear over a
  flattened map, softmax attention over tokens), mark the result *global*: it keeps the field
  of the map before the pooling (Araujo et al., Distill 2019), and so do the layers after it.
- Where the grid recurrence no longer holds (transposed convolution, interpolation, a split of
  one spatial axis into blocks, an op the tracker does not know that changes the shape), the
  field is *lost*, and every field computed from it is lost too: "-" rather than a wrong number.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import torch
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

from cnnlab.arithmetic import INPUT_FIELD, ReceptiveField, next_receptive_field
from cnnlab.inspect.layout import (
    LOST,
    Atom,
    Dim,
    Field,
    Layout,
    axis_field,
    axis_of,
    has_space,
    is_lost,
    merge_dims,
    plain,
    regroup,
    shifted,
    union_fields,
)
from cnnlab.inspect.shapes import pool_windows

aten = torch.ops.aten


# Ops that keep each position where it is, besides those PyTorch tags point-wise. Normalisation
# statistics are held constant, as gates are: a GroupNorm does not widen a field.
_SHAPE_KEEPING = {
    "clone", "_to_copy", "alias", "detach", "lift_fresh", "lift_fresh_copy", "contiguous", "dropout",
    "native_dropout", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional", "batch_norm", "native_layer_norm", "native_group_norm",
    "where", "masked_fill", "masked_fill_", "_masked_scale", "to", "type_as", "_to_dim_order_copy",
    "clamp", "clamp_", "hardtanh", "hardtanh_", "prelu", "_prelu_kernel", "rrelu_with_noise",
    "fill", "fill_", "zero_", "bernoulli", "bernoulli_",
    # activations PyTorch does not tag point-wise
    "relu", "relu6", "hardswish", "hardsigmoid", "silu", "mish", "gelu", "elu", "selu", "celu",
    "leaky_relu", "sigmoid", "tanh", "softplus", "hardshrink", "softshrink", "threshold", "log_sigmoid",
    "glu_jvp", "logit",
}


def _keeps_positions(func: Any, name: str) -> bool:
    """Whether an op maps each position to itself: point-wise (in place or not) or listed above."""
    if torch.Tag.pointwise in func.tags or name in _SHAPE_KEEPING or name.rstrip("_") in _SHAPE_KEEPING:
        return True
    out_of_place = getattr(aten, name[:-1], None) if name.endswith("_") else None  # add_
    overload = getattr(out_of_place, "default", None)
    return overload is not None and torch.Tag.pointwise in overload.tags


def _dims_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class FieldTracker:
    """Carries a `Layout` on every tensor that descends from the input through a forward pass."""

    def __init__(self) -> None:
        self.layouts: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        self.rank = 0  # spatial dimensions of the input image
        self.filled_from: WeakTensorKeyDictionary = WeakTensorKeyDictionary()  # base -> its first copy's source

    def seed(self, tensor: torch.Tensor) -> None:
        """Mark `tensor` as the input image (N, C, *spatial): a field of one pixel per axis."""
        self.rank = tensor.ndim - 2
        spatial = tuple((Atom(size, INPUT_FIELD, axis),) for axis, size in enumerate(tensor.shape[2:]))
        self.layouts[tensor] = Layout(plain(tuple(tensor.shape[:2])) + spatial)

    def field(self, tensor: torch.Tensor) -> tuple[Field | None, bool]:
        """Return (the field of one unit of `tensor`, whether it is global), or (None, False)."""
        layout = self.layouts.get(tensor)
        if layout is None:
            return None, False
        if layout.pooled:
            return layout.pooled_field, True
        return self._spatial_field(layout), False

    def _spatial_field(self, layout: Layout) -> Field | None:
        """Return the field per input axis, in axis order; None unless each axis appears once, known."""
        atoms = [a for d in layout.dims for a in d if a.field is not None]
        if any(a.field is LOST for a in atoms) or sorted(a.axis for a in atoms if a.axis is not None) != list(range(self.rank)):
            return None
        if len(atoms) != self.rank:
            return None
        return tuple(a.field for a in sorted(atoms, key=lambda a: a.axis))

    def _set(self, tensor: Any, layout: Layout | None) -> None:
        if not isinstance(tensor, torch.Tensor) or layout is None:
            return
        sizes = [math.prod(a.size for a in d) for d in layout.dims]
        if sizes != list(tensor.shape):  # a rule that misread its op: no field rather than a wrong one
            layout = Layout(plain(tuple(tensor.shape), LOST), layout.pooled, layout.pooled_field)
        self.layouts[tensor] = layout

    def _pooled_union(self, layouts: list[Layout], shape: tuple[int, ...]) -> Layout:
        """Return a global layout whose field covers those of `layouts` (pooled or not)."""
        fields = [lay.pooled_field if lay.pooled else self._spatial_field(lay) for lay in layouts]
        return Layout(plain(shape), True, union_fields(fields))

    def _pooled(self, source: Layout, shape: tuple[int, ...]) -> Layout:
        """Return the layout of a tensor that mixes every position of `source`."""
        field = source.pooled_field if source.pooled else self._spatial_field(source)
        return Layout(plain(shape), pooled=True, pooled_field=field)

    def update(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        """Give the outputs of one dispatched op the layouts its inputs and index mapping imply.

        Never raises: an op whose arguments the rules misread gets a lost field, so a summary
        still gives every count and says '-' where it cannot follow the field.
        """
        tracked = [(t, self.layouts[t]) for t in tree_flatten((args, kwargs))[0]
                   if isinstance(t, torch.Tensor) and t in self.layouts]
        if not tracked:
            return
        try:
            self._update(func, args, kwargs, out, tracked)
        except Exception:  # noqa: BLE001 - a misread signature must not fail the user's summary
            for piece in tree_flatten(out)[0]:
                if isinstance(piece, torch.Tensor):
                    self._set(piece, Layout(plain(tuple(piece.shape), LOST)))

    def _update(self, func: Any, args: tuple, kwargs: dict, out: Any,
                tracked: list[tuple[torch.Tensor, Layout]]) -> None:
        packet = func.overloadpacket
        if all(lay.pooled for _, lay in tracked):  # made from globally pooled values only: still global
            field = union_fields([lay.pooled_field for _, lay in tracked])
            for piece in tree_flatten(out)[0]:
                if isinstance(piece, torch.Tensor):
                    self._set(piece, Layout(plain(tuple(piece.shape)), True, field))
            return
        if packet in (aten.split, aten.split_with_sizes, aten.unbind, aten.chunk):
            self._split(packet, args, out)
            return
        out_tensor = out if isinstance(out, torch.Tensor) else next(
            (o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)), None)
        if out_tensor is None:
            return
        if packet is aten.copy_:
            self._copy(args[0], args[1])
            return
        for extra in tree_flatten(out)[0]:  # the other outputs of an op (var_mean's mean): no rule, no guess
            if isinstance(extra, torch.Tensor) and extra is not out_tensor and extra not in self.layouts:
                self._set(extra, Layout(plain(tuple(extra.shape), LOST)))
        layout = self._rule(func, packet, args, kwargs, out_tensor, tracked)
        if layout is None:
            return
        if not layout.pooled and not any(has_space(d) for d in layout.dims):
            pooled = [lay for _, lay in tracked if lay.pooled]
            if pooled:  # a layer after global pooling
                layout = Layout(layout.dims, True, union_fields([p.pooled_field for p in pooled]))
        self._set(out_tensor, layout)

    def _rule(self, func: Any, packet: Any, args: tuple, kwargs: dict, out: torch.Tensor,
              tracked: list[tuple[torch.Tensor, Layout]]) -> Layout | None:
        """Return the layout of the output of one op (None: leave it untracked)."""
        name = packet.__name__
        shape = tuple(out.shape)
        source = self.layouts.get(args[0]) if isinstance(args[0], torch.Tensor) else None
        if packet in (aten.convolution, aten._convolution):
            if source is None:
                return None
            if args[6]:  # transposed: up-sampling, so the field is no longer a grid of whole pixels
                return Layout(plain(shape, LOST))
            if is_lost(source.dims[1]):
                return Layout(plain(shape, LOST))
            if has_space(source.dims[1]):  # channels that are positions (a token-mixing Conv1d)
                return self._pooled(source, shape)
            return self._windowed(source, shape, self._conv_windows(args), new_channels=True)
        if name.startswith(("max_pool", "avg_pool")) and source is not None:
            return self._windowed(source, shape, pool_windows(name, args))
        if name.startswith(("adaptive_", "_adaptive_")) and source is not None:
            return self._adaptive(name, source, args[0], shape)
        if name.startswith(("fractional_max_pool", "upsample", "_upsample", "grid_sampler", "im2col",
                            "col2im", "pixel_shuffle", "pixel_unshuffle")):
            if source is not None and source.pooled:  # a pooled value spread back over a map
                return Layout(plain(shape), True, source.pooled_field)
            return Layout(plain(shape, LOST))
        if name.endswith("_like") or name.startswith("new_"):
            return None  # a fresh tensor of the input's shape (zeros_like): it depends on no pixel
        binary = len(args) > 1 and isinstance(args[1], torch.Tensor)  # max(a, b) is element-wise
        if name in ("mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean",
                    "logsumexp", "prod", "norm", "linalg_vector_norm", "argmax", "argmin") and source is not None and not binary:
            return self._reduce(name, source, args, kwargs, shape)
        if name in ("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax") and source is not None:
            dim = args[1] % len(source.dims)
            return self._pooled(source, shape) if has_space(source.dims[dim]) else source
        if name in ("view", "_unsafe_view", "reshape", "_reshape_alias") and source is not None:
            if len(args) > 1 and not isinstance(args[1], list | tuple):
                return source if tuple(args[0].shape) == shape else None  # view(dtype)
            dims = regroup([a for d in source.dims for a in d], shape)
            return Layout(dims, source.pooled, source.pooled_field) if dims else Layout(plain(shape, LOST))
        if name == "permute" and source is not None:
            order = [d % len(source.dims) for d in args[1]]
            return replace(source, dims=tuple(source.dims[d] for d in order))
        if name in ("transpose", "t", "swapaxes", "swapdims") and source is not None:
            dims = list(source.dims)
            a, b = (0, 1) if name == "t" else (args[1] % len(dims), args[2] % len(dims))
            dims[a], dims[b] = dims[b], dims[a]
            return replace(source, dims=tuple(dims))
        if name == "expand" and source is not None:
            extra = len(shape) - len(source.dims)
            dims = [(Atom(s, None),) for s in shape[:extra]]
            for d, size in zip(source.dims, shape[extra:], strict=True):
                dims.append(d if math.prod(a.size for a in d) == size else (Atom(size, None),))
            return replace(source, dims=tuple(dims))
        if name == "unsqueeze" and source is not None:
            dims = list(source.dims)
            dims.insert(args[1] % (len(dims) + 1), (Atom(1, None),))
            return replace(source, dims=tuple(dims))
        if name == "squeeze" and source is not None:
            return self._squeeze(source, args, shape)
        if name == "select" and source is not None:
            return self._select(source, args[1] % len(source.dims), args[2])
        if name == "slice" and source is not None:
            return self._slice(source, args, shape)
        if name in ("cat", "concat", "concatenate", "stack"):
            return self._cat(name, args, kwargs, shape)
        if name in ("constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
                    "replication_pad1d", "replication_pad2d", "replication_pad3d", "_pad_circular") and source is not None:
            return self._pad(source, list(args[1]), shape)
        if name in ("mm", "addmm", "bmm", "baddbmm"):
            return self._matmul(name, args, shape)
        if _keeps_positions(func, name):
            return self._elementwise(tracked, out)
        return Layout(plain(shape, LOST))  # an op without a rule here (flip, gather, cumsum): no guess

    def _windowed(self, source: Layout, shape: tuple[int, ...], windows: list[tuple[int, int, int, int]],
                  new_channels: bool = False, lost: bool = False) -> Layout:
        """A convolution or pooling window over the last len(windows) dimensions (`lost`: no grid)."""
        lead = len(shape) - len(windows)
        dims = list(source.dims[:lead])
        if new_channels:
            dims[-1] = (Atom(shape[lead - 1], None),)
        for dim, size, (kernel, stride, pad, dilation) in zip(source.dims[lead:], shape[lead:], windows, strict=True):
            field = axis_field(dim)
            if isinstance(field, ReceptiveField):
                field = LOST if lost else next_receptive_field(field, kernel, stride, pad, dilation)
            dims.append((Atom(size, field, axis_of(dim)),))
        return Layout(tuple(dims), source.pooled, source.pooled_field)

    @staticmethod
    def _conv_windows(args: tuple) -> list[tuple[int, int, int, int]]:
        weight, stride, padding, dilation = args[1], args[3], args[4], args[5]
        return list(zip(weight.shape[2:], stride, padding, dilation, strict=True))

    def _adaptive(self, name: str, source: Layout, x: torch.Tensor, shape: tuple[int, ...]) -> Layout:
        """An adaptive pool: to one cell, global pooling; to a divisor of the size, a regular window.

        Cell i pools [floor(i*I/O), ceil((i+1)*I/O)): when O does not divide I the cells are not
        a grid (7 -> 6 gives windows of 2 at uneven steps), so the field is lost there.
        """
        found = re.search(r"(\d)d", name)
        spatial = int(found.group(1)) if found else len(shape) - 2
        if all(s == 1 for s in shape[-spatial:]):
            return self._pooled(source, shape)
        inputs, outputs = x.shape[-spatial:], shape[-spatial:]
        if any(i % o for i, o in zip(inputs, outputs, strict=True)):
            return self._windowed(source, shape, [(1, 1, 0, 1)] * spatial, lost=True)
        return self._windowed(source, shape, [(i // o, i // o, 0, 1) for i, o in zip(inputs, outputs, strict=True)])

    def _reduce(self, name: str, source: Layout, args: tuple, kwargs: dict, shape: tuple[int, ...]) -> Layout:
        """A reduction: over a spatial axis it pools globally; over channels it keeps the map."""
        ndim = len(source.dims)
        at = 2 if name in ("norm", "linalg_vector_norm") else 1  # norm(x, ord, dim): ord comes first
        dims_arg = args[at] if len(args) > at and not isinstance(args[at], bool) else kwargs.get("dim")
        if isinstance(dims_arg, int | list | tuple) and not isinstance(dims_arg, bool):
            reduced = {d % ndim for d in _dims_list(dims_arg)} or set(range(ndim))
        else:
            reduced = set(range(ndim))
        if any(has_space(source.dims[d]) for d in reduced):
            return self._pooled(source, shape)
        kept = [d for i, d in enumerate(source.dims) if i not in reduced]
        if len(kept) != len(shape):  # keepdim: the reduced dimensions stay with size 1
            kept = [(Atom(1, None),) if i in reduced else d for i, d in enumerate(source.dims)]
        return replace(source, dims=tuple(kept))

    def _squeeze(self, source: Layout, args: tuple, shape: tuple[int, ...]) -> Layout:
        ndim = len(source.dims)
        sizes = [math.prod(a.size for a in d) for d in source.dims]
        wanted = {d % ndim for d in _dims_list(args[1])} if len(args) > 1 else set(range(ndim))
        removed = {d for d in wanted if sizes[d] == 1}
        dims: list[Dim] = []
        carry: list[Atom] = []
        for i, d in enumerate(source.dims):
            if i in removed:
                carry.extend(a for a in d if a.field is not None)  # a 1x1 map keeps its field
                continue
            dims.append((*d, *carry) if carry else d)
            carry = []
        if carry and dims:
            dims[-1] = (*dims[-1], *carry)
        return replace(source, dims=tuple(dims)) if len(dims) == len(shape) else Layout(plain(shape, LOST))

    def _select(self, source: Layout, dim: int, index: int) -> Layout:
        dims = list(source.dims)
        removed = dims.pop(dim)
        field = axis_field(removed)
        if field is not None and dims:
            size = math.prod(a.size for a in removed)
            kept = shifted(field, index % size) if len(removed) == 1 else LOST
            target = dim - 1 if dim > 0 else 0
            dims[target] = (*dims[target], Atom(1, kept, axis_of(removed)))
        return replace(source, dims=tuple(dims))

    def _slice(self, source: Layout, args: tuple, shape: tuple[int, ...]) -> Layout:
        dim = (args[1] if len(args) > 1 else 0) % len(source.dims)
        size = math.prod(a.size for a in source.dims[dim])
        start = args[2] if len(args) > 2 and args[2] is not None else 0
        step = args[4] if len(args) > 4 else 1
        start = max(0, min(size, start + size if start < 0 else start))
        dims = list(source.dims)
        field = axis_field(dims[dim])
        if shape[dim] == size:
            return source
        if field is None:
            dims[dim] = (Atom(shape[dim], None),)
        else:
            dims[dim] = (Atom(shape[dim], shifted(field, start, step) if len(dims[dim]) == 1 else LOST, axis_of(dims[dim])),)
        return replace(source, dims=tuple(dims))

    def _split(self, packet: Any, args: tuple, out: Any) -> None:
        """Give each piece of a split, chunk or unbind its slice of the input's layout."""
        x = args[0]
        source = self.layouts.get(x) if isinstance(x, torch.Tensor) else None
        pieces = [o for o in out if isinstance(o, torch.Tensor)] if isinstance(out, list | tuple) else []
        if source is None:
            return
        dim = (args[1] if packet is aten.unbind and len(args) > 1 else args[2] if len(args) > 2 else 0)
        dim %= len(source.dims)
        offset = 0
        for piece in pieces:
            if packet is aten.unbind:
                self._set(piece, self._select(source, dim, offset))
                offset += 1
                continue
            length = piece.shape[dim]
            self._set(piece, self._slice(source, (x, dim, offset, offset + length, 1), tuple(piece.shape)))
            offset += length

    def _cat(self, name: str, args: tuple, kwargs: dict, shape: tuple[int, ...]) -> Layout | None:
        # Legacy cat skips empty 1-D tensors: only inputs of the output's rank take part.
        tensors = [t for t in args[0] if isinstance(t, torch.Tensor) and t.ndim == len(shape) - (name == "stack")]
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        dim %= len(shape)
        layouts = [self.layouts.get(t) for t in tensors]
        present = [lay for lay in layouts if lay is not None]
        if not present:
            return None
        if name == "stack":
            present = [Layout((*lay.dims[:dim], (Atom(1, None),), *lay.dims[dim:]), lay.pooled, lay.pooled_field)
                       for lay in present]
        if any(lay.pooled for lay in present):  # a branch that pools globally (ASPP's image pool)
            return self._pooled_union(present, shape)
        dims: list[Dim] = []
        for i, size in enumerate(shape):
            if i == dim:
                spatial = any(has_space(lay.dims[i]) for lay in present)
                dims.append((Atom(size, LOST if spatial else None),))
            else:
                dims.append(merge_dims([lay.dims[i] for lay in present], size))
        return Layout(tuple(dims))

    def _pad(self, source: Layout, pads: list[int], shape: tuple[int, ...]) -> Layout:
        dims = list(source.dims)
        for i in range(len(pads) // 2):
            dim = len(dims) - 1 - i
            field = axis_field(dims[dim])
            dims[dim] = (Atom(shape[dim], shifted(field, -pads[2 * i]) if len(dims[dim]) == 1 or field is None else LOST,
                              axis_of(dims[dim])),)
        return replace(source, dims=tuple(dims))

    def _matmul(self, name: str, args: tuple, shape: tuple[int, ...]) -> Layout:
        """A matrix product: rows and columns keep their layouts; the contracted axis mixes."""
        offset = 1 if name in ("addmm", "baddbmm") else 0
        a, b = args[offset], args[offset + 1]
        la = self.layouts.get(a) or Layout(plain(tuple(a.shape)))
        lb = self.layouts.get(b) or Layout(plain(tuple(b.shape)))
        if has_space(la.dims[-1]) or has_space(lb.dims[-2]):
            mixed = la if has_space(la.dims[-1]) else lb
            if is_lost(mixed.dims[-1] if mixed is la else mixed.dims[-2]) and not mixed.pooled:
                return Layout(plain(shape, LOST))  # contracting over positions we lost track of
            return self._pooled(mixed, shape)
        dims = (la.dims[-2], lb.dims[-1])
        if len(shape) == 3:
            dims = (merge_dims([la.dims[0], lb.dims[0]], shape[0]), *dims)
        pooled = [lay for lay in (la, lb) if lay.pooled]
        return Layout(dims) if not pooled else Layout(dims, True, union_fields([p.pooled_field for p in pooled]))

    def _elementwise(self, tracked: list[tuple[torch.Tensor, Layout]], out: torch.Tensor) -> Layout:
        """Point-wise ops and anything that keeps the shape: merge along each axis, broadcast aside."""
        shape = tuple(out.shape)
        aligned = [(t, lay) for t, lay in tracked
                   if t.ndim <= len(shape) and all(s in (1, o) for s, o in zip(t.shape[::-1], shape[::-1], strict=False))]
        if not aligned:
            return Layout(plain(shape, LOST))
        # A broadcast input (an SE gate of shape (B, C, 1, 1)) is a side input: it does not widen
        # the field. A full-size input that mixes every position (attention) makes the sum global.
        full = [lay for t, lay in aligned if tuple(t.shape) == shape
                and not any(st == 0 and sz > 1 for st, sz in zip(t.stride(), t.shape, strict=True))]  # expand_as
        if any(lay.pooled for lay in full) or all(lay.pooled for _, lay in aligned):
            return self._pooled_union([lay for t, lay in aligned if lay.pooled or lay in full], shape)
        spatial = [(t, lay) for t, lay in aligned if not lay.pooled]
        dims = []
        for j, size in enumerate(shape):
            candidates = []
            for t, lay in spatial:
                k = j - (len(shape) - t.ndim)
                if k >= 0 and t.shape[k] == size:
                    candidates.append(lay.dims[k])
            dims.append(merge_dims(candidates, size) if candidates else (Atom(size, None),))
        return Layout(tuple(dims))

    def _copy(self, target: torch.Tensor, source: Any) -> None:
        """A copy into a tensor (or into a slice of a fresh one, as circular padding does)."""
        layout = self.layouts.get(source) if isinstance(source, torch.Tensor) else None
        if layout is None:
            return
        base = target._base
        if base is None or base.ndim != target.ndim:
            if tuple(target.shape) == tuple(source.shape) and target not in self.layouts:
                self._set(target, layout)
            return
        root = source if source._base is None else source._base
        if base in self.layouts and (root is base or self.filled_from.get(base) is root):
            return  # circular padding's wrapped borders: more of the same input, on the same grid
        if base in self.layouts or target.stride() != base.stride():
            # A copy into part of a tracked tensor (x[:, :c] = conv(...)), of a second source, or
            # through a strided or permuted view: its positions no longer share one field.
            self._set(base, Layout(plain(tuple(base.shape), LOST)))
            return
        self.filled_from[base] = root
        offset, before = target.storage_offset() - base.storage_offset(), []
        for stride in base.stride():
            before.append(offset // stride if stride else 0)
            offset = offset % stride if stride else offset
        dims = []
        for d, pad, size in zip(layout.dims, before, base.shape, strict=True):
            field = axis_field(d)
            dims.append(d if size == math.prod(a.size for a in d) else (Atom(size, shifted(field, -pad), axis_of(d)),))
        self._set(base, Layout(tuple(dims), layout.pooled, layout.pooled_field))
