"""The layout a tensor carries for receptive-field tracking: per dimension, its factors and fields.

A factor (`Atom`) is one axis of the input image folded into a tensor dimension (H and W become
one token dimension of two factors), or a batch / channel factor with no field. `LOST` marks a
spatial factor whose field no grid describes. `cnnlab.inspect.fields` maps layouts op by op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from cnnlab.arithmetic import ReceptiveField

Field = tuple[ReceptiveField, ...]  # one entry per spatial dimension of the input


class _Lost:
    """Marks a spatial factor whose field the grid recurrence cannot give."""

    def __repr__(self) -> str:
        return "LOST"


LOST = _Lost()
AxisField = ReceptiveField | _Lost | None  # None: a batch or channel factor, not spatial


class Atom(NamedTuple):
    """One factor of a tensor dimension: its size, and the input axis it indexes with its field."""

    size: int
    field: AxisField
    axis: int | None = None  # which spatial axis of the input (0 = H, 1 = W); None if not spatial


Dim = tuple[Atom, ...]  # the factors of one tensor dimension, outermost first


@dataclass(frozen=True)
class Layout:
    """What each dimension of a tensor indexes, and whether the tensor mixes every position."""

    dims: tuple[Dim, ...]
    pooled: bool = False  # global pooling, or a layer after it
    pooled_field: Field | None = None  # the field of the map before that pooling


def plain(shape: tuple[int, ...], field: AxisField = None) -> tuple[Dim, ...]:
    """Return one single-factor dimension per size, each with `field` (None: not spatial)."""
    return tuple((Atom(size, field),) for size in shape)


def axis_of(dim: Dim) -> int | None:
    """Return the input axis a dimension's one spatial factor indexes (None if not exactly one)."""
    spatial = [atom for atom in dim if atom.field is not None]
    return spatial[0].axis if len(spatial) == 1 else None


def has_space(dim: Dim) -> bool:
    """Return whether any factor of the dimension indexes an input axis (known or lost)."""
    return any(atom.field is not None for atom in dim)


def is_lost(dim: Dim) -> bool:
    """Return whether any factor of the dimension has lost its field."""
    return any(atom.field is LOST for atom in dim)


def axis_field(dim: Dim) -> AxisField:
    """Return the field a dimension indexes: None, that of its one spatial factor, or LOST."""
    spatial = [atom.field for atom in dim if atom.field is not None]
    if not spatial:
        return None
    return spatial[0] if len(spatial) == 1 else LOST


def union(a: AxisField, b: AxisField) -> AxisField:
    """Return the smallest field covering both: the largest extent along this axis."""
    if a is None or b is None:
        return a if b is None else b
    if a is LOST or b is LOST or a.jump != b.jump:
        return LOST
    low = min(a.start - (a.size - 1) / 2, b.start - (b.size - 1) / 2)
    high = max(a.start + (a.size - 1) / 2, b.start + (b.size - 1) / 2)
    return ReceptiveField(size=round(high - low + 1), jump=a.jump, start=(low + high) / 2)


def union_fields(fields: list[Field | None]) -> Field | None:
    """Return the per-axis union of whole fields, or None if any is unknown or ranks differ."""
    known = [f for f in fields if f is not None]
    if len(known) != len(fields) or len({len(f) for f in known}) != 1:
        return None
    merged = []
    for axis in zip(*known, strict=True):
        value: AxisField = axis[0]
        for other in axis[1:]:
            value = union(value, other)
        if value is LOST:
            return None
        merged.append(value)
    return tuple(merged)


def merge_dims(dims: list[Dim], size: int) -> Dim:
    """Return one dimension from inputs that meet element-wise (same size along it)."""
    spatial = [d for d in dims if has_space(d)]
    if not spatial:
        return dims[0] if dims else (Atom(size, None),)
    structure = tuple(a.size for a in spatial[0])
    if any(tuple(a.size for a in d) != structure for d in spatial):
        return (Atom(size, LOST),)
    merged = []
    for atoms in zip(*spatial, strict=True):
        value: AxisField = None
        axes = {atom.axis for atom in atoms if atom.field is not None}
        for atom in atoms:
            value = union(value, atom.field)
        if len(axes) > 1:  # H meets W (x + x.transpose): not one box per axis
            value = LOST
        merged.append(Atom(atoms[0].size, value, axes.pop() if len(axes) == 1 else None))
    return tuple(merged)


def shifted(field: AxisField, offset: int, step: int = 1) -> AxisField:
    """Return the field of every `step`-th unit starting at unit `offset` (a crop or a pad)."""
    if field is None or field is LOST:
        return field
    return ReceptiveField(field.size, field.jump * step, field.start + offset * field.jump)


def regroup(atoms: list[Atom], shape: tuple[int, ...]) -> tuple[Dim, ...] | None:
    """Group the factors of a view's input into its output dimensions, or None if they do not fit.

    A factor split across output dimensions stays itself when it indexes channels; a spatial
    factor split into blocks (pixel unshuffle, window partition) no longer has a grid field.
    """
    atoms, index, dims = list(atoms), 0, []
    for size in shape:
        if size == 1:
            if index < len(atoms) and atoms[index].size == 1:
                dims.append((atoms[index],))
                index += 1
            else:
                dims.append((Atom(1, None),))
            continue
        group, product = [], 1
        while product < size:
            if index >= len(atoms) or size % product:
                return None
            atom = atoms[index]
            if size % (product * atom.size) == 0:
                group.append(atom)
                product *= atom.size
                index += 1
                continue
            need = size // product
            if atom.size % need:
                return None
            piece = None if atom.field is None else LOST
            group.append(Atom(need, piece, atom.axis))
            atoms[index] = Atom(atom.size // need, piece, atom.axis)
            product = size
        dims.append(tuple(group))
    rest = atoms[index:]
    if any(a.size != 1 for a in rest):
        return None
    if rest and dims:  # a 1x1 map flattened away keeps its field on the last dimension
        dims[-1] = (*dims[-1], *rest)
    return tuple(dims)
