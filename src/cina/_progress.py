"""Progress bars for long stages: tqdm on stderr, shown on a terminal only unless asked for."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["progress_bar", "progress_iter", "show_progress"]


def show_progress(progress: bool | None, long_stage: bool) -> bool:
    """Whether to show bars: ``progress`` True/False forces them on/off; None shows them for a
    long stage when stderr is a terminal."""
    if progress is None:
        return bool(long_stage and sys.stderr.isatty())
    return bool(progress)


@contextlib.contextmanager
def progress_bar(show: bool, total: int, desc: str, unit: str):
    """A tqdm bar on stderr when ``show`` and there is work to count, else None."""
    if not show or total <= 0:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
               leave=False)
    try:
        yield bar
    finally:
        bar.close()


def progress_iter(items, show: bool, desc: str, unit: str):
    """``items`` one by one, each counted on a :func:`progress_bar` once its work is done."""
    items = list(items)
    with progress_bar(show, len(items), desc, unit) as bar:
        for item in items:
            yield item
            if bar is not None:
                bar.update(1)
