"""Progress bars that stay out of the way.

A bar is shown only when someone is watching: not with ``quiet=True``, not when the
stream (stderr by default) is not a terminal (a pipe, a log file, a test run), and not
when tqdm is missing (it is an optional dependency, in the ``cli`` extra). Otherwise the
same object is returned, doing nothing, so callers never branch on it.

The environment variable ``N2S_PROGRESS`` overrides the terminal test: ``1`` forces bars
on (for example under ``script`` or in a notebook), ``0`` forces them off.

Examples
--------
>>> from sklearn_n2s.utils._progress import progress
>>> total = 0
>>> for value in progress(range(3), desc="adding", quiet=True):
...     total += value
>>> total
3
"""

import os
import sys


class _Silent:
    """A stand-in for a tqdm bar that shows nothing: iterates, updates, closes."""

    def __init__(self, iterable=None, total=None):
        self.iterable = iterable
        self.total = total
        self.n = 0

    def __iter__(self):
        for item in self.iterable:
            self.n += 1
            yield item

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s="", refresh=True):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_enabled(quiet=False, file=None):
    """Whether a bar would be shown: not quiet, tqdm importable, stream a terminal."""
    if quiet:
        return False
    forced = os.environ.get("N2S_PROGRESS", "").strip()
    if forced in ("0", "1"):
        wanted = forced == "1"
    else:
        stream = sys.stderr if file is None else file
        wanted = bool(getattr(stream, "isatty", lambda: False)())
    if not wanted:
        return False
    try:
        import tqdm  # noqa: F401  (optional dependency)
    except ImportError:
        return False
    return True


def progress(iterable=None, *, total=None, desc=None, quiet=False, file=None, unit="it"):
    """A tqdm bar over ``iterable`` (or a manual one with ``total``), or a silent stand-in.

    Parameters
    ----------
    iterable : iterable or None
        What to iterate over; None for a bar advanced with ``update``.
    total : int or None
        Number of steps, when ``iterable`` has no length.
    desc : str or None
        Label shown in front of the bar.
    quiet : bool, default=False
        Never show a bar.
    file : stream or None
        Where the bar is written; stderr by default.
    unit : str, default='it'

    Returns
    -------
    bar : tqdm.tqdm or a silent object with the same ``update``/``close``/iteration
    """
    if iterable is not None and total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not progress_enabled(quiet, file):
        return _Silent(iterable, total)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, file=file or sys.stderr, unit=unit,
                leave=False, dynamic_ncols=True)


class ProgressScorer:
    """Wrap a scorer so that each call advances a bar: progress for a ``GridSearchCV``.

    ``GridSearchCV`` calls its scorer once per candidate and split (with ``n_jobs=1``),
    so a bar with ``total = n_candidates * n_splits`` follows the sweep without touching
    the search itself.

    Parameters
    ----------
    scorer : callable ``(estimator, X, y=None) -> float``
    bar : object with an ``update`` method (see :func:`progress`)
    """

    def __init__(self, scorer, bar):
        self.scorer = scorer
        self.bar = bar

    def __call__(self, estimator, X, y=None, **kwargs):
        try:
            return self.scorer(estimator, X, y, **kwargs)
        finally:
            self.bar.update(1)

    def __repr__(self):
        return repr(self.scorer)
