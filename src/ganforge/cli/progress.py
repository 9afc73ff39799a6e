"""One rule for progress bars in the CLI: a bar with a time estimate on a terminal, nothing
with --quiet or when stderr is a file or a pipe (logs stay clean)."""
from __future__ import annotations

import sys
from contextlib import contextmanager


def showing(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(total: int, unit: str, quiet: bool = False):
    """Yields `update(done, total)`, the callback the inference functions take; `total` may
    be 0 when only the work itself knows it."""
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, disable=not showing(quiet), dynamic_ncols=True) as bar:
        def update(done: int, total_now: int) -> None:
            if bar.total != total_now:  # a total known only once the work starts (evaluate's n)
                bar.total = total_now
            bar.update(done - bar.n)
        yield update
