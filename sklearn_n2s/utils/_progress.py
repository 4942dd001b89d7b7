"""Progress bars that stay out of the way.

A bar is shown only when someone is watching: not with ``quiet=True``, not when the
stream (stderr by default) is not a terminal (a pipe, a log file, a test run), and not
when tqdm is missing (it is an optional dependency, in the ``cli`` extra). The terminal
test is tqdm's own (``disable=None``: tqdm turns itself off when its stream is not a
terminal). When tqdm is missing or the bar is switched off, a silent stand-in with the
same ``update``/``close``/iteration is returned, so callers never branch on it.

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


def _tqdm():
    """tqdm's ``tqdm.auto.tqdm``, or None when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _disable(quiet):
    """tqdm's ``disable``: True (off), False (forced on) or None (on for a terminal only)."""
    if quiet:
        return True
    forced = os.environ.get("N2S_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "0"
    return None


def progress_enabled(quiet=False, file=None):
    """Whether :func:`progress` would draw a bar on ``file``.

    Parameters
    ----------
    quiet : bool, default=False
        Never show a bar.
    file : stream or None, default=None
        Where the bar would be written; stderr by default.

    Returns
    -------
    enabled : bool
        False when ``quiet``, when ``N2S_PROGRESS=0``, when tqdm is missing, or when the
        stream is not a terminal (tqdm's own test) and ``N2S_PROGRESS`` is not ``1``.
    """
    disable, tqdm = _disable(quiet), _tqdm()
    if disable is True or tqdm is None:
        return False
    # Ask tqdm itself; a bar that waits forever (delay) never draws anything.
    bar = tqdm(total=0, disable=disable, file=file or sys.stderr, delay=float("inf"),
               leave=False)
    enabled = not bar.disable
    bar.close()
    return enabled


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
        Where the bar is written; stderr by default. tqdm draws nothing when it is not
        a terminal, unless ``N2S_PROGRESS=1``.
    unit : str, default='it'
        Name of one step, shown in the bar's rate.

    Returns
    -------
    bar : tqdm.tqdm or a silent object with the same ``update``/``close``/iteration
    """
    if iterable is not None and total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    disable, tqdm = _disable(quiet), _tqdm()
    if disable is True or tqdm is None:
        return _Silent(iterable, total)
    return tqdm(iterable, total=total, desc=desc, file=file or sys.stderr, unit=unit,
                leave=False, dynamic_ncols=True, disable=disable)


class ProgressScorer:
    """Wrap a scorer so that each call advances a bar: progress for a ``GridSearchCV``.

    ``GridSearchCV`` calls its scorer once per candidate and split (with ``n_jobs=1``),
    so a bar with ``total = n_candidates * n_splits`` follows the sweep without touching
    the search itself.

    Parameters
    ----------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``, e.g. a
        :class:`~sklearn_n2s.SelfSupervisedScorer`.
    bar : object with an ``update`` method
        What :func:`progress` returns.
    """

    def __init__(self, scorer, bar):
        self.scorer = scorer
        self.bar = bar

    def __call__(self, estimator, X, y=None, **kwargs):
        """Score with the wrapped scorer, then advance the bar by one (even on error).

        Parameters
        ----------
        estimator : estimator
            The fitted estimator to score.
        X : array-like
            The held-out data.
        y : None
            Passed on to the scorer.
        **kwargs : dict
            Passed on to the scorer.

        Returns
        -------
        score : float
            What the wrapped scorer returns.
        """
        try:
            return self.scorer(estimator, X, y, **kwargs)
        finally:
            self.bar.update(1)

    def __repr__(self):
        return repr(self.scorer)
