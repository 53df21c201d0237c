"""Per-layer table of any nn.Module: shapes, parameters, MACs, activation memory, receptive field.

The model is traced on PyTorch's meta device, so no weights are allocated and a VGG-19 or
ResNet-152 summary takes well under two seconds on a CPU. A live model is summarised through a
meta copy; the original is never moved, put in eval mode or otherwise changed.

Counting rules (stated here because every published table picks its own):
- MACs: multiply-accumulates of convolution, transposed convolution, linear and matmul/bmm, per
  image, at the level of the dispatched ops (FlopCounterMode reports 2 FLOPs per MAC).
- Element-wise ops (a separate column): one per output element of each point-wise op
  (activations, residual adds), two per element of normalisation (normalise, then the affine
  shift), one per window element of pooling, one per input element of global/adaptive pooling.
- Activation elements (the `activation_elements` total): the input plus every leaf output that is
  a new tensor at inference. Not new, so not counted: outputs of in-place modules
  (`ReLU(inplace=True)`), outputs that are the input itself (Dropout in eval mode), and pools that
  keep the size (a 7x7 adaptive pool on a 7x7 map). `activation_elements_all_leaves` counts every
  leaf output not computed in place instead.
- Functional elements (a separate column): the new tensors made by ops in a container's own
  forward, outside any leaf layer: residual adds, DenseNet's concatenations, SE multiplies. Neither
  the activation total nor torchinfo counts them; the training-memory estimate adds them.
- torchinfo's "Forward/backward pass size" is 2 x bytes x the outputs of the layers that own
  parameters: `Summary.torchinfo_pass_bytes()` sums our rows that way and gives its figure.
"""

from __future__ import annotations

import copy
import csv
import importlib
import io
import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.shapes import MetaShapes
from cnnlab.inspect.tracing import Field, ModuleCall, trace


@dataclass(frozen=True)
class LayerRow:
    """One row of the summary: one call of one leaf layer (or of a module doing work itself)."""

    name: str  # dotted module path, as in model.named_modules()
    type: str  # the module's class name
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int  # parameters owned by this module itself
    trainable_params: int  # of which requires_grad
    macs: int  # multiply-accumulates per image (conv, linear, matmul)
    elementwise_ops: int  # per image: activations, normalisation, pooling, adds
    activation_elements: int  # output values per image
    activation_counted: bool  # whether the output counts toward activation_elements (see rules)
    receptive_field: tuple[int, ...] | None  # input pixels per output unit, per spatial dim
    jump: tuple[int, ...] | None  # input pixels between neighbouring output units
    start: tuple[float, ...] | None  # centre of the first unit's field, input pixel coordinates
    receptive_field_global: bool = False  # global pooling or after it: the field of the map before it
    functional_elements: int = 0  # per image: new tensors of ops in this module's own forward

    @property
    def frozen_params(self) -> int:
        """Return the parameters of this layer that do not require gradients."""
        return self.params - self.trainable_params


@dataclass(frozen=True)
class Summary:
    """Per-layer rows and totals of one model at one input size; render as table, JSON or CSV."""

    model: str
    input_shape: tuple[int, ...]  # (C, H, W), without the batch dimension
    dtype_bytes: int
    layers: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    buffers: int  # BatchNorm running statistics and other buffers: not parameters
    total_macs: int
    total_elementwise_ops: int
    activation_elements: int
    activation_elements_all_leaves: int
    functional_elements: int  # outputs of residual adds, concatenations, gates (see the rules)
    output_receptive_field: tuple[int, ...] | None  # field of the output (before global pooling)
    output_receptive_field_global: bool = False  # whether the output pools globally

    @property
    def activation_bytes(self) -> int:
        """Return forward activation memory per image in bytes under the counting rule."""
        return self.activation_elements * self.dtype_bytes

    def training_memory_bytes(self, batch_size: int = 1, optimizer_states: int = 2) -> dict[str, int]:
        """Return an estimate of training memory: weights, grads, optimiser state, saved activations.

        Saved activations are taken as every non-in-place leaf output plus the outputs of
        functional ops (what backward keeps), times the batch; `optimizer_states` is 2 for
        Adam/AdamW, 1 for SGD with momentum.
        """
        weights = self.total_params * self.dtype_bytes
        grads = self.trainable_params * self.dtype_bytes
        state = optimizer_states * self.trainable_params * self.dtype_bytes
        saved = (self.activation_elements_all_leaves + self.functional_elements) * self.dtype_bytes * batch_size
        return {
            "weights": weights,
            "gradients": grads,
            "optimizer_state": state,
            "activations": saved,
            "total": weights + grads + state + saved,
        }

    def torchinfo_pass_bytes(self, batch_size: int = 1) -> int:
        """Return torchinfo's "forward/backward pass size": 2 x bytes x outputs of layers with parameters."""
        return 2 * self.dtype_bytes * batch_size * sum(r.activation_elements for r in self.layers if r.params)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON-ready data."""
        layers = []
        for row in self.layers:
            item = asdict(row)
            item["frozen_params"] = row.frozen_params
            item["activation_bytes"] = row.activation_elements * self.dtype_bytes
            layers.append(item)
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "frozen_params": self.total_params - self.trainable_params,
            "buffers": self.buffers,
            "total_macs": self.total_macs,
            "total_elementwise_ops": self.total_elementwise_ops,
            "activation_elements": self.activation_elements,
            "activation_bytes": self.activation_bytes,
            "activation_elements_all_leaves": self.activation_elements_all_leaves,
            "functional_elements": self.functional_elements,
            "torchinfo_pass_bytes": self.torchinfo_pass_bytes(),
            "output_receptive_field": self.output_receptive_field,
            "output_receptive_field_global": self.output_receptive_field_global,
            "training_memory_bytes_per_image": self.training_memory_bytes(),
            "layers": layers,
        }

    def to_json(self) -> str:
        """Return the summary as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """Return one CSV line per layer (name, type, shape, params, MACs, ...)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            ["name", "type", "output_shape", "params", "trainable_params", "macs",
             "elementwise_ops", "activation_elements", "activation_counted",
             "functional_elements", "receptive_field", "jump", "global"]
        )
        for row in self.layers:
            writer.writerow(
                [row.name, row.type, "x".join(map(str, row.output_shape)), row.params,
                 row.trainable_params, row.macs, row.elementwise_ops, row.activation_elements,
                 int(row.activation_counted), row.functional_elements, _fmt_tuple(row.receptive_field),
                 _fmt_tuple(row.jump), int(row.receptive_field_global)]
            )
        return buffer.getvalue()

    def to_table(self) -> Any:
        """Return a rich Table with one row per layer and the totals in the caption."""
        from rich.table import Table

        table = Table(title=f"{self.model}  input {'x'.join(map(str, self.input_shape))}")
        for header in ("layer", "type", "output", "params", "MACs", "elem. ops", "act. elems", "func. elems", "RF", "jump"):
            table.add_column(header, justify="left" if header in ("layer", "type", "output") else "right")
        for row in self.layers:
            table.add_row(
                row.name, row.type, "x".join(map(str, row.output_shape)), f"{row.params:,}",
                f"{row.macs:,}", f"{row.elementwise_ops:,}",
                f"{row.activation_elements:,}" + ("" if row.activation_counted else "*"),
                f"{row.functional_elements:,}" if row.functional_elements else "",
                _fmt_field(row), _fmt_tuple(row.jump),
            )
        memory = self.training_memory_bytes()
        table.caption = (
            f"params {self.total_params:,} (trainable {self.trainable_params:,})  "
            f"MACs {self.total_macs:,} ({self.total_macs / 1e9:.3f} G)  "
            f"activations {self.activation_elements:,} values = "
            f"{self.activation_bytes / 1e6:.1f} MB/image (+{self.functional_elements:,} in functional ops)  "
            f"training memory ~{memory['total'] / 1e6:.1f} MB/image with Adam\n"
            "* not a new tensor at inference (in place, or the input itself): not in the total\n"
            "RF g: global pooling or after it, showing the field of the map before the pooling"
        )
        return table

    def render(self) -> str:
        """Return the rich table as plain text."""
        from rich.console import Console

        console = Console(width=160, record=True, file=io.StringIO())
        console.print(self.to_table())
        return console.export_text()


def _fmt_field(row: LayerRow) -> str:
    return _fmt_tuple(row.receptive_field) + (" g" if row.receptive_field_global else "")


def _fmt_tuple(value: tuple | None) -> str:
    if value is None:
        return "-"
    return "x".join(str(v) for v in value)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def load_factory(spec: str) -> nn.Module:
    """Return the model that `module:factory` builds (called with no arguments)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CnnlabError(f"model {spec!r} is not a known name: use module:factory, e.g. torchvision.models:vgg16")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise CnnlabError(f"cannot import {spec!r} ({error}): check the module path and factory name") from None
    try:
        model = factory()
    except Exception as error:  # noqa: BLE001 - the factory's own failure, in its words, one line
        raise CnnlabError(f"{spec} failed when called with no arguments: {_first_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise CnnlabError(f"{spec} returned a {type(model).__name__}, not an nn.Module: name a model factory")
    return model


def build_model(spec: str, input_size: tuple[int, ...] | None = None) -> nn.Module:
    """Return the model a spec names: a zoo name, tv/<name>, timm/<name>, or module:factory (a detector built for `input_size`)."""
    if ":" in spec:
        return load_factory(spec)
    from cnnlab.models import create_model, is_detector

    if input_size is not None and len(input_size) == 3 and is_detector(spec):
        return create_model(spec, input_size=input_size[-1])  # its grid, or torchvision's resize, follows the size
    return create_model(spec)


def build_on_meta(spec: str, input_size: tuple[int, ...] | None = None) -> nn.Module:
    """Return the model a spec names with its parameters on the meta device.

    Built on the meta device directly, without running initialisation (no data to fill).
    A constructor that reads tensor values (torchvision's RegNet calls `.tolist()` on widths it
    computes with torch) cannot run there: it is built on the CPU instead and copied to meta.
    """
    try:
        with torch.device("meta"), MetaShapes():
            return build_model(spec, input_size)
    except CnnlabError:
        raise
    except Exception:  # noqa: BLE001 - any constructor failure on meta: retry where data exists
        pass
    try:
        net = build_model(spec, input_size)
    except CnnlabError:
        raise
    except Exception as error:  # noqa: BLE001 - a third-party constructor: its words, in one line
        raise CnnlabError(f"{spec} cannot be built: {_first_line(error)}") from None
    return meta_copy(net)


def meta_copy(model: nn.Module) -> nn.Module:
    """Return a copy of `model` whose parameters and buffers live on the meta device."""
    memo: dict[int, Any] = {}
    # Plain tensor attributes (a fixed mask, RBF centres kept outside the buffers) go along too.
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                memo[id(value)] = torch.empty_like(value, device="meta")
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


def _output_shape(call: ModuleCall) -> tuple[int, ...]:
    out = call.output
    while isinstance(out, list | tuple) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        out = next(iter(out.values()))
    return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()


def _is_new_tensor(call: ModuleCall) -> bool:
    """Whether a leaf's output is stored as a new tensor at inference (the counting rule)."""
    out, inp = call.output, call.input_tensor
    if not isinstance(out, torch.Tensor):
        return False
    if getattr(call.module, "inplace", False):
        return False
    if inp is not None:
        root = inp if inp._base is None else inp._base
        if out is inp or (out._base is not None and out._base is root):
            return False
    is_adaptive_pool = type(call.module).__name__.startswith("Adaptive")
    if is_adaptive_pool and inp is not None and out.shape == inp.shape:
        return False  # an adaptive pool to the size it already has is the identity
    return True


def _row(call: ModuleCall) -> LayerRow:
    params = list(call.module.parameters(recurse=False))
    out_shape = _output_shape(call)
    field: Field | None = call.output_field
    return LayerRow(
        name=call.name,
        type=type(call.module).__name__,
        output_shape=out_shape,
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=call.macs,
        elementwise_ops=call.elementwise_ops,
        activation_elements=_numel(out_shape) if call.is_leaf else 0,
        activation_counted=call.is_leaf and _is_new_tensor(call),
        receptive_field=tuple(f.size for f in field) if field else None,
        jump=tuple(f.jump for f in field) if field else None,
        start=tuple(f.start for f in field) if field else None,
        receptive_field_global=call.output_global,
        functional_elements=call.functional_elements,
    )


def _output_field(calls: list[ModuleCall]) -> tuple[tuple[int, ...] | None, bool]:
    """Return (the field of the output computed last, whether it is global); (None, False) if none."""
    if not calls:
        return None, False
    last = max(calls, key=lambda c: c.finished)
    field = tuple(f.size for f in last.output_field) if last.output_field else None
    return field, last.output_global


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def summary(
    model: nn.Module | str,
    input_size: tuple[int, ...] | list[int],
    *,
    dtype: torch.dtype = torch.float32,
) -> Summary:
    """Return the per-layer Summary of `model` (a module, or `module:factory`) at `input_size` (C, H, W)."""
    input_size = tuple(int(s) for s in input_size)
    if not input_size or any(s < 1 for s in input_size):
        raise CnnlabError(f"input size {input_size} must be positive integers such as 3x224x224")
    if isinstance(model, str):
        label = model
        net = build_on_meta(model, input_size)
    else:
        label = type(model).__name__
        net = meta_copy(model)
    net.eval()  # a copy: the user's model keeps its mode
    x = torch.zeros((1, *input_size), device="meta", dtype=dtype)
    if dtype != torch.float32:
        net = net.to(dtype)
    with trace(net, root_name=label) as (record, fields, counter):
        fields.seed(x)
        try:
            with torch.no_grad(), counter:
                # A detector whose forward is lazy (torchvision's) names the layers to trace instead.
                getattr(net, "traced_forward", net)(x)
        except Exception as error:  # any failure of the user's forward: report it, in one line
            raise CnnlabError(
                f"{label} cannot run on input {'x'.join(map(str, input_size))}: {_first_line(error)}"
            ) from None

    # Rows: leaves, plus containers that compute something themselves (a residual add, F.conv2d).
    kept = [
        call for call in record.calls
        if call.is_leaf or call.macs or call.elementwise_ops or call.functional_elements
        or any(True for _ in call.module.parameters(recurse=False))
    ]
    rows = [_row(call) for call in kept]
    input_elements = _numel(input_size)
    counted = sum(r.activation_elements for r in rows if r.activation_counted)
    all_leaves = sum(
        row.activation_elements for row, call in zip(rows, kept, strict=True)
        if call.is_leaf and not getattr(call.module, "inplace", False)
    )
    all_params = list(net.parameters())
    output_field, output_global = _output_field(kept)
    return Summary(
        model=label,
        input_shape=input_size,
        dtype_bytes=torch.empty((), dtype=dtype).element_size(),
        layers=tuple(rows),
        total_params=sum(p.numel() for p in all_params),
        trainable_params=sum(p.numel() for p in all_params if p.requires_grad),
        buffers=sum(b.numel() for b in net.buffers()),
        total_macs=record.root_macs + sum(c.macs for c in record.calls),
        total_elementwise_ops=record.root_elementwise_ops + sum(c.elementwise_ops for c in record.calls),
        activation_elements=input_elements + counted,
        activation_elements_all_leaves=input_elements + all_leaves,
        functional_elements=sum(c.functional_elements for c in kept),
        output_receptive_field=output_field,
        output_receptive_field_global=output_global,
    )

