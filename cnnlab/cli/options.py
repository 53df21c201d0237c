"""Every option of the command line at one place: the shared options, their table and the parser's help.

The table `SHARED` maps each meaning shared by several commands to one flag, domain and help text;
`add()` puts an option on a parser from there, so two commands cannot drift apart. The domains
(argparse types that know their own values) are in `cli.domains` and `cli.numeric`; what happens
after parsing (old spellings, options a form would ignore) is in `cli.reconcile`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from cnnlab.cli.domains import Choice, Device, Domain, Fail, Folder, Format, Override, Text, Words
from cnnlab.cli.numeric import Integer
from cnnlab.cli.reconcile import OLD, Deprecated


@dataclass(frozen=True)
class Spec:
    """One option: its flag, domain, default and help; `deprecated` are old spellings that still work."""

    flag: str
    domain: Domain | None  # None: a switch (store_true)
    help: str
    default: Any = None
    deprecated: tuple[str, ...] = ()
    nargs: str | None = None
    required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _explain_methods() -> list[str]:
    from cnnlab.explain import list_methods

    return list(list_methods())

FORMATS = Format(("text", "json", "csv"))
CHECKPOINTS = Choice(("auto", "best", "last", "swa"))
def _tunnel(name: str) -> bool:
    """Return whether `name` is a noise tunnel over a method (smoothgrad:integrated_gradients); raise when it names one badly."""
    if ":" not in name:
        return False
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.api import resolve

    try:
        resolve(name)
    except CnnlabError as error:
        raise Fail(str(error)) from None
    return True


METHODS = Words(_explain_methods, everything="all", what="method", example="gradcam,saliency", composed=_tunnel)
METHODS_OR_NONE = Words(_explain_methods, everything="all", what="method", example="gradcam,saliency", none="none",
                        composed=_tunnel)
SEED = Integer(0, 2**32 - 1)

# Each meaning that several commands share: one flag, one domain, one help text.
SHARED: dict[str, Spec] = {
    "device": Spec("--device", Device(), "auto (CUDA when available; $CNNLAB_DEVICE first), cpu, cuda or cuda:N", "auto"),
    "devices": Spec("--devices", Integer(1, 1024), "data-parallel processes (GPUs, or CPU processes with gloo) through torchrun", 1),
    "data_dir": Spec("--data-dir", Folder(), "first folder to look for data in (then $CNNLAB_DATA, ~/.cache/cnnlab)",
                     extra={"metavar": "DIR"}),
    "data": Spec("--data", Text(), "data spec: digits, mnist, fashion-mnist, cifar10, cifar100, folder:PATH, mnist-seg, ...",
                 extra={"metavar": "SPEC"}),
    "checkpoint": Spec("--checkpoint", CHECKPOINTS, "weights: auto (swa if kept, else best if it validated, else last), "
                       "best, last or swa (default: the recipe's evaluation.weights)"),
    "method": Spec("--method", METHODS, "explanation methods: a comma list, or all (see cnnlab explain --list)"),
    "method_or_none": Spec("--method", METHODS_OR_NONE, "explanation methods: a comma list, all, or none"),
    "format": Spec("--format", FORMATS, "how to print the result", "text"),
    "seed": Spec("--seed", SEED, "random seed (0 is a seed)"),
    "recipe": Spec("--recipe", Text(), "recipes/<name>.yaml or a YAML path", extra={"metavar": "RECIPE"}),
    "epochs": Spec("--epochs", Integer(1, 1_000_000), "shortcut for epochs=N"),
    "count": Spec("--count", Integer(1, 10_000_000), "test images to use"),
    "layer": Spec("--layer", Text(), "layer name (default: the model's last stage)", extra={"metavar": "LAYER"}),
    "steps": Spec("--steps", Integer(1, 1_000_000), "optimisation steps"),
    "target": Spec("--target", Integer(0, 1_000_000), "class to explain or aim at (default: the predicted class)"),
    "out_run": Spec("--out", Text(), "run directory to write (never overwritten)", extra={"metavar": "RUN"}),
    "out": Spec("--out", Text(), "folder to write into (fixed file names inside)", extra={"metavar": "FOLDER"}),
    "overrides": Spec("overrides", Override(), "recipe overrides key=value, e.g. optim.lr=0.01 augment.flip=true", nargs="*"),
}

def add(parser: argparse.ArgumentParser, meaning: str, *, help: str | None = None, default: Any = "__table__",  # noqa: A002
        flag: str | None = None, **overrides: Any) -> argparse.Action:
    """Add the shared option `meaning` to `parser` (a command may say more in its help, or change the default)."""
    spec = SHARED[meaning]
    return option(parser, Spec(flag or spec.flag, overrides.pop("domain", spec.domain), help or spec.help,
                               spec.default if default == "__table__" else default, overrides.pop("deprecated", spec.deprecated),
                               overrides.pop("nargs", spec.nargs), overrides.pop("required", spec.required),
                               {**spec.extra, **overrides}))


def option(parser: argparse.ArgumentParser, spec: Spec) -> argparse.Action:
    """Add one option (or positional) to `parser` from its Spec, with its old spellings."""
    command = parser.prog.split()[-1]
    kwargs: dict[str, Any] = {"help": spec.help}
    if spec.domain is None:
        kwargs["action"] = "store_true"
    else:
        kwargs.update(type=spec.domain, default=spec.default, metavar=spec.domain.metavar)
        if spec.nargs is not None:
            kwargs["nargs"] = spec.nargs
    kwargs.update(spec.extra)
    positional = not spec.flag.startswith("-")
    if not positional and spec.required:
        kwargs["required"] = True
    action = parser.add_argument(spec.flag, **kwargs)
    for old in spec.deprecated:
        extra = {} if spec.domain is None else {"type": spec.domain, "metavar": kwargs["metavar"]}
        new = spec.flag if not positional else f"a word after the command: cnnlab {command} {kwargs['metavar']}"
        parser.add_argument(old, dest=f"{action.dest}{OLD}", action=Deprecated, new=new, command=command,
                            inner="store_true" if spec.domain is None else "store", help=argparse.SUPPRESS,
                            default=argparse.SUPPRESS, **extra)
    return action


# The commands by purpose, in the order `cnnlab --help` lists them.
PURPOSES: dict[str, tuple[str, ...]] = {
    "design and inspect": ("arith", "models", "summary", "rf"),
    "data": ("augment", "data"),
    "train": ("train", "distill", "noisy-student", "finetune", "experiment"),
    "evaluate": ("eval", "predict", "attack"),
    "look inside": ("explain", "sanity", "faithfulness", "visualize", "style"),
    "report": ("report", "compare"),
}


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, wide enough to read."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=110)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Defaults of None and switches say nothing useful; argparse would print "(default: None)".
        if (action.default is None or action.default is False or action.default is argparse.SUPPRESS or action.default == []
                or not action.option_strings or action.help is argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)
