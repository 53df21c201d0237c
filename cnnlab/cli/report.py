"""`cnnlab report` and `cnnlab compare`: a run, or several side by side, as one HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.domains import Text
from cnnlab.cli.options import METHODS_OR_NONE, Spec, add, option
from cnnlab.cli.reconcile import out_folder

DEFAULT_EXPLAIN = "gradcam,integrated_gradients"


def register(commands: argparse._SubParsersAction) -> None:
    """Add the report and compare commands."""
    report = commands.add_parser("report", help="one self-contained HTML page of a trained run")
    option(report, Spec("run", Text(), "run directory written by cnnlab train", extra={"metavar": "RUN"}))
    add(report, "method_or_none", default=DEFAULT_EXPLAIN, deprecated=("--explain",),
        help="explanation methods for the worst mistakes: a comma list, all, or none")
    add(report, "out", help="folder to write report.html into (default: the run directory)")
    add(report, "data_dir")
    add(report, "device")
    report.set_defaults(func=run_report)

    compare = commands.add_parser("compare", help="overlaid curves and differing recipe keys of runs on one data set")
    option(compare, Spec("runs", Text(), "run directories written by cnnlab train", nargs="+", extra={"metavar": "RUN"}))
    add(compare, "out", default=".", help="folder to write compare.html into")
    compare.set_defaults(func=run_compare)


def explain_methods(text: str | tuple[str, ...]) -> list[str]:
    """Return the methods a --method word (or its parsed tuple) names ([] for none); unknown names are one-line errors."""
    from cnnlab.errors import CnnlabError

    if isinstance(text, str):
        try:
            text = METHODS_OR_NONE(text)
        except argparse.ArgumentTypeError as error:
            raise CnnlabError(str(error)) from None
    return list(text)


def write_run_report(run: str, methods: list[str], out: str | None = None, data_dir: str | None = None,
                     device: str = "auto") -> str:
    """Write the run's report on the chosen device; return the path written."""
    from cnnlab.report.run_report import write_report
    from cnnlab.train.distributed import local_device

    # Never a process group: after `train --devices N` rank 0 reports alone, the group already gone.
    return str(write_report(run, out, methods, data_dir, local_device(device)))


def run_report(args: argparse.Namespace) -> int:
    """Write the report into --out (default: the run) and print where it is."""
    from cnnlab.runs.outputs import Output

    folder, legacy = out_folder(args, ".html")
    out = Output(folder or args.run, own=frozenset({"report.html"}), own_run=args.run)  # a run's own report, into it only
    methods = explain_methods(args.method)
    path = out.write(legacy or "report.html", lambda target: write_run_report(args.run, methods, str(target), args.data_dir,
                                                                               args.device))
    print(f"wrote {path}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Write compare.html into --out and print where it is."""
    from cnnlab.report.compare import write_comparison
    from cnnlab.runs.outputs import Output

    folder, legacy = out_folder(args, ".html")
    out = Output(folder)
    from cnnlab.runs.load import require_trained

    for run in args.runs:  # curves of a run that never finished an epoch: nothing to set beside the others
        if (Path(run) / "data.json").is_file():
            require_trained(run)
    print(f"wrote {out.write(legacy or 'compare.html', lambda target: write_comparison(args.runs, target))}")
    return 0
