"""`ganforge report RUN [RUN ...] [--out FILE]`: one HTML file, images and plots inside, about
a run (training curves, health actions, sample grids over time, the final evaluation beside its
real-data floor, the config) or several runs compared on the same axes."""
from __future__ import annotations

import argparse


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="a self-contained HTML report of a run, or of several runs compared",
        description="Write one HTML file that opens offline: loss curves, D accuracy, gradient "
                    "norms, learning rate, ADA p, images/s, FID/KID over steps, the health "
                    "controller's actions marked on the time axis, sample grids over time, the "
                    "final evaluation (eval.json) beside its real-data floor, and the resolved "
                    "config. Several runs: one figure per quantity with a line per run, final "
                    "numbers side by side and the config keys that differ.")
    parser.add_argument("runs", metavar="RUN", nargs="+", help="run directories")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="the HTML file [default: RUN/report.html for one run; required for several]")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (there is none either when stderr is not a terminal)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..report import write_report
    from .progress import showing

    with tqdm(unit="part", disable=not showing(args.quiet), dynamic_ncols=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total  # known once the runs are read: figures, grids, images
            bar.update(done - bar.n)
        path = write_report(args.runs, args.out, args.force, progress=progress)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
