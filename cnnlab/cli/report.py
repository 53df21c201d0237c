"""`cnnlab report` and `cnnlab compare`: a run, or several side by side, as one HTML page."""

from __future__ import annotations

import argparse

DEFAULT_EXPLAIN = "gradcam,integrated_gradients"


def register(commands: argparse._SubParsersAction) -> None:
    """Add the report and compare commands."""
    report = commands.add_parser("report", help="one self-contained HTML page of a trained run")
    report.add_argument("run", help="run directory written by cnnlab train")
    report.add_argument("--explain", default=DEFAULT_EXPLAIN,
                        help="explanation methods for the worst mistakes, comma-separated, or none")
    report.add_argument("--out", default=None, help="HTML file to write (default RUN/report.html)")
    report.add_argument("--data-dir", default=None, help="first folder to look for the test data in")
    report.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    report.set_defaults(func=run_report)

    compare = commands.add_parser("compare", help="overlaid curves and differing recipe keys of runs on one data set")
    compare.add_argument("runs", nargs="+", help="run directories written by cnnlab train")
    compare.add_argument("--out", default="compare.html", help="HTML file to write (default compare.html)")
    compare.set_defaults(func=run_compare)


def explain_methods(text: str) -> list[str]:
    """Return the methods `--explain` names ([] for none); unknown names are one-line errors."""
    from cnnlab.cli.explain import _methods

    return [] if text.strip().lower() in ("", "none") else _methods(text)


def write_run_report(run: str, methods: list[str], out: str | None = None, data_dir: str | None = None,
                     device: str = "auto") -> str:
    """Write the run's report on the chosen device; return the path written."""
    from cnnlab.report.run_report import write_report
    from cnnlab.train.distributed import local_device

    # Never a process group: after `train --devices N` rank 0 reports alone, the group already gone.
    return str(write_report(run, out, methods, data_dir, local_device(device)))


def run_report(args: argparse.Namespace) -> int:
    """Write the report and print where it is."""
    path = write_run_report(args.run, explain_methods(args.explain), args.out, args.data_dir, args.device)
    print(f"wrote {path}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Write the comparison page and print where it is."""
    from cnnlab.report.compare import write_comparison

    print(f"wrote {write_comparison(args.runs, args.out)}")
    return 0
