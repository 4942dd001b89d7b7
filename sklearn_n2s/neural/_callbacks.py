"""skorch callbacks of :class:`~sklearn_n2s.neural.N2SNet`: progress bar, learning rate.

- :class:`EpochProgressBar`: skorch's per-epoch bar, drawn only when the net is verbose
  and stderr is a terminal (tqdm's ``disable=None``).
- :class:`WarmupCosineLR`: a :class:`skorch.callbacks.LRScheduler` stepping a
  :class:`torch.optim.lr_scheduler.LambdaLR` every batch: a linear warm-up over the first
  5% of the steps of a ``fit``, then a cosine decay to 0 by its last step
  (:func:`warmup_cosine_factor`). The schedule spans each ``fit`` or ``partial_fit``
  call, and the base learning rates are restored when it ends, so the next call starts
  from them again.
- :class:`NonFiniteGuard`: stops training with a :class:`FloatingPointError` that names
  the likely causes as soon as a batch loss, or a weight after an epoch, is not finite,
  instead of returning a net whose weights are NaN.
- :class:`TimeBudget`: stops a ``fit`` or ``partial_fit`` call after the first batch that
  ends past the net's ``max_time`` (seconds of ``clock``: the process's CPU time or the
  wall clock), at the end of that batch's epoch, the way skorch's ``EarlyStopping``
  stops; :class:`WarmupCosineLR` then runs its schedule over the time budget.
"""

import functools
import math
import time

import numpy as np
import torch
import tqdm
from skorch.callbacks import Callback, LRScheduler, ProgressBar
from torch.optim.lr_scheduler import LambdaLR

from ._data import ImageBatchLoader


class EpochProgressBar(ProgressBar):
    """skorch's per-epoch progress bar, silent when the net's ``verbose`` is 0.

    With ``verbose`` on, the bar is created with ``disable=None``: tqdm draws it only
    when its stream (stderr) is a terminal, so logs and pipes stay clean.
    """

    def _get_batch_size(self, net, training):
        batch_size = super()._get_batch_size(net, training)
        if batch_size == "auto":  # N2SNet's default, resolved for this fit
            plan = getattr(net, "train_plan_", None) if training else None
            batch_size = net._train_batch_size(1, patches=bool(plan and plan["patch_size"]))
        return batch_size

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Open the bar of this epoch.

        Parameters
        ----------
        net : skorch.NeuralNet
        dataset_train, dataset_valid : torch Dataset or None
            Their lengths give the number of batches (``batches_per_epoch='auto'``).
        **kwargs
            Ignored.
        """
        total = self.batches_per_epoch
        if total == "auto":
            total = self._get_batches_per_epoch(net, dataset_train, dataset_valid)
        elif total == "count":
            total = len(net.history[-2, "batches"]) if len(net.history) > 1 else None
        if self._use_notebook():
            self.pbar_ = tqdm.tqdm_notebook(total=total, leave=False,
                                            disable=not net.verbose)
        else:
            self.pbar_ = tqdm.tqdm(total=total, leave=False,
                                   disable=None if net.verbose else True)


def warmup_cosine_factor(step, total_steps, warmup_fraction=0.05, time_fraction=0.0):
    """Learning-rate factor at a step: linear warm-up times a cosine decay.

    ``min(1, (step + 1) / warmup) * (1 + cos(pi * step / total_steps)) / 2`` with
    ``warmup = max(1, int(warmup_fraction * total_steps))``. Under a time budget the
    progress is the larger of ``step / total_steps`` and ``time_fraction``, the share
    of the budget spent (the warm-up ends at ``warmup_fraction`` of either), so the
    schedule ends with whichever budget ends first.

    Parameters
    ----------
    step : int
        Steps (batches) done so far in this fit, from 0.
    total_steps : int
        Steps of the whole fit.
    warmup_fraction : float, default=0.05
    time_fraction : float in [0, 1], default=0.0
        Share of the fit's time budget spent (0 without one).

    Returns
    -------
    factor : float in [0, 1]
    """
    warmup = max(1, int(warmup_fraction * total_steps))
    ramp = min(1.0, max((step + 1) / warmup, time_fraction / warmup_fraction))
    if time_fraction > step / total_steps:
        angle = math.pi * min(1.0, time_fraction)
    else:
        angle = math.pi * step / total_steps  # (the step formula's own rounding)
    return ramp * 0.5 * (1.0 + math.cos(angle))


class WarmupCosine:
    """Picklable ``lr_lambda`` of :class:`~torch.optim.lr_scheduler.LambdaLR`.

    Parameters
    ----------
    total_steps : int
    warmup_fraction : float, default=0.05
    time_fraction : callable or None, default=None
        Returns the share of a time budget spent (:meth:`TimeBudget.fraction`); None:
        steps alone.
    """

    def __init__(self, total_steps, warmup_fraction=0.05, time_fraction=None):
        self.total_steps = total_steps
        self.warmup_fraction = warmup_fraction
        self.time_fraction = time_fraction

    def __call__(self, step):
        spent = 0.0 if self.time_fraction is None else self.time_fraction()
        return warmup_cosine_factor(step, self.total_steps, self.warmup_fraction, spent)


def _n_train_batches(net, dataset):
    """Batches per epoch of the training iterator, without building it."""
    kwargs = net.get_params_for("iterator_train")
    batch_size = kwargs.get("batch_size", net.batch_size)
    n = len(dataset)
    if batch_size == "auto":  # N2SNet's default: whole images (patches have a plan)
        batch_size = net._train_batch_size(n, patches=False)
    if batch_size == -1:
        batch_size = n
    if net.iterator_train is ImageBatchLoader:
        return len(ImageBatchLoader(dataset, batch_size=batch_size))
    if kwargs.get("drop_last", False):
        return n // batch_size
    return math.ceil(n / batch_size)


class WarmupCosineLR(LRScheduler):
    """Linear warm-up and cosine decay of the learning rate, stepped every batch.

    Active while the net's ``lr_schedule`` is ``'cosine'``. The
    :class:`~torch.optim.lr_scheduler.LambdaLR` is built when the first epoch of a
    ``fit``/``partial_fit`` begins, once the number of training batches is known: the
    net's ``train_plan_['steps']`` (N2SNet's budget), else ``max_epochs * batches per
    epoch`` steps in all. With a time budget (the net's ``max_time``, a
    :class:`TimeBudget` callback named ``'time_budget'``) the schedule follows the
    share of it spent as well, whichever is further. The learning rate of each batch
    is recorded in the history under ``event_name``.

    Parameters
    ----------
    warmup_fraction : float, default=0.05
        Fraction of the steps spent warming up linearly.
    event_name : str or None, default='event_lr'
        History key of the learning rate of each batch; None records nothing.

    Examples
    --------
    >>> from sklearn_n2s.neural._callbacks import WarmupCosineLR
    >>> lrs = WarmupCosineLR().simulate(100, initial_lr=0.01)
    >>> print(f"first {lrs[0]:.4f}, peak at step {lrs.argmax()}, last {lrs[-1]:.1e}")
    first 0.0020, peak at step 4, last 2.5e-06
    """

    def __init__(self, warmup_fraction=0.05, event_name="event_lr"):
        super().__init__(policy=LambdaLR, event_name=event_name, step_every="batch")
        self.warmup_fraction = warmup_fraction

    @property
    def kwargs(self):
        # Nothing is passed through to the policy: the lr_lambda is built here.
        return {}

    def simulate(self, steps, initial_lr, step_args=None):
        """Learning rates of a fit of ``steps`` batches starting from ``initial_lr``.

        Parameters
        ----------
        steps : int
        initial_lr : float
        step_args : None
            Ignored (kept for skorch's signature).

        Returns
        -------
        lrs : ndarray of shape (steps,)
        """
        return np.array([initial_lr * warmup_cosine_factor(s, steps, self.warmup_fraction)
                         for s in range(steps)])

    def on_train_begin(self, net, **kwargs):
        """Forget any previous schedule: the next epoch builds this fit's.

        Parameters
        ----------
        net : skorch.NeuralNet
        **kwargs
            Ignored.
        """
        self.lr_scheduler_ = None
        self.batch_idx_ = 0

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        """Build the schedule at the first epoch of a fit (cosine nets only).

        Parameters
        ----------
        net : skorch.NeuralNet
        dataset_train : torch Dataset
        **kwargs
            Ignored.
        """
        if self.lr_scheduler_ is not None or getattr(net, "lr_schedule", "cosine") != "cosine":
            return
        plan = getattr(net, "train_plan_", None)
        if plan is not None:  # N2SNet's budget of optimiser steps
            total_steps = max(1, plan["steps"])
        else:
            total_steps = max(1, net.max_epochs * _n_train_batches(net, dataset_train))
        groups = net.optimizer_.param_groups
        self.base_lrs_ = [group["lr"] for group in groups]
        for group in groups:
            group["initial_lr"] = group["lr"]
        budget = _time_budget(net)
        self.lr_scheduler_ = LambdaLR(net.optimizer_, WarmupCosine(
            total_steps, self.warmup_fraction,
            None if budget is None else functools.partial(budget.fraction, net)))

    def on_batch_end(self, net, training, **kwargs):
        """Record this batch's learning rate and step the schedule (training only).

        Parameters
        ----------
        net : skorch.NeuralNet
        training : bool
        **kwargs
            Passed to :meth:`skorch.callbacks.LRScheduler.on_batch_end`.
        """
        if self.lr_scheduler_ is not None:
            super().on_batch_end(net, training=training, **kwargs)

    def on_train_end(self, net, **kwargs):
        """Restore the base learning rates, so that the next fit starts from them.

        Parameters
        ----------
        net : skorch.NeuralNet
        **kwargs
            Ignored.
        """
        if self.lr_scheduler_ is not None:
            for group, lr in zip(net.optimizer_.param_groups, self.base_lrs_):
                group["lr"] = lr
        self.lr_scheduler_ = None


def _likely_causes(net):
    lr = getattr(net, "lr", None)
    causes = [f"a learning rate too large (lr={lr!r}: try it 10 times smaller)"]
    offset = getattr(net, "input_offset_", None)
    scale = getattr(net, "input_scale_", None)
    if offset is not None and scale is not None:
        causes.append(
            "extreme outliers in the input (it is normalised by its median "
            f"{offset:.6g} and spread {scale:.6g}: a value very many spreads away "
            "dominates the float32 loss)")
    else:
        causes.append("inputs of very large magnitude")
    causes.append("an optimizer or criterion setting that overflows float32")
    return "; ".join(causes)


class NonFiniteGuard(Callback):
    """Stop training with a clear error when the loss or the weights stop being finite.

    Every batch loss (training and validation) is checked at the end of its batch, and
    the module's parameters at the end of every epoch (a last optimizer step can break
    the weights after the last loss was computed). The error is a
    :class:`FloatingPointError` naming the epoch, the batch and the likely causes (the
    learning rate, the input range), raised before the net could return NaN weights.
    """

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        """Raise if this batch's loss is NaN or infinite.

        Parameters
        ----------
        net : skorch.NeuralNet
        batch : object
            Ignored.
        training : bool
        loss : scalar tensor or None
        **kwargs
            Ignored.

        Raises
        ------
        FloatingPointError
        """
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return
        phase = "training" if training else "validation"
        epoch = len(net.history)
        n_batches = len(net.history[-1, "batches"])
        raise FloatingPointError(
            f"{type(net).__name__}: the {phase} loss became {loss.item()} at epoch {epoch}, "
            f"batch {n_batches}; training stopped (the net's weights are not usable). "
            f"Likely causes: {_likely_causes(net)}.")

    def on_epoch_end(self, net, **kwargs):
        """Raise if a parameter of the module is NaN or infinite.

        Parameters
        ----------
        net : skorch.NeuralNet
        **kwargs
            Ignored.

        Raises
        ------
        FloatingPointError
        """
        params = [p.detach() for p in net.module_.parameters()]
        if not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            return
        raise FloatingPointError(
            f"{type(net).__name__}: the network's weights became non-finite during epoch "
            f"{len(net.history)}; training stopped. Likely causes: {_likely_causes(net)}.")


#: ``clock`` values of :class:`TimeBudget` and N2SNet, and the functions they read.
CLOCKS = {"process": time.process_time, "wall": time.perf_counter}


def _time_budget(net):
    """The net's :class:`TimeBudget` callback when it has a time budget, else None."""
    if getattr(net, "max_time", None) is None:
        return None
    budget = dict(getattr(net, "callbacks_", ())).get("time_budget")
    return budget if isinstance(budget, TimeBudget) else None


class TimeBudget(Callback):
    """Stop a ``fit`` or ``partial_fit`` call when the net's time budget is spent.

    Reads the net's ``max_time`` (seconds; None: no budget, the callback does nothing)
    and ``clock`` (``'process'``: :func:`time.process_time`, the CPU time of the
    whole process, all its threads together, so other jobs on a shared machine do
    not count and 2 threads spend it about twice as fast as 1; ``'wall'``:
    :func:`time.perf_counter`). The clock starts when the call's training begins.
    The batch that ends past the budget is the last: the net's training loop asks
    :meth:`until_spent` between batches, the epoch closes normally (losses,
    validation, other callbacks), and :meth:`on_epoch_end` then ends the call the way
    :class:`skorch.callbacks.EarlyStopping` does (a ``KeyboardInterrupt`` that
    skorch's ``partial_fit`` catches), so ``on_train_end`` callbacks still run.

    Attributes
    ----------
    elapsed_ : float
        Seconds of ``clock`` spent in the last call's training (at its last batch).
    steps_ : int
        Training batches of the last call.
    spent_ : bool
        Whether the last call stopped on its time budget.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.neural import N2SNet
    >>> X = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)
    >>> net = N2SNet(module__width=4, max_time=0.5, random_state=0).fit(X)
    >>> budget = dict(net.callbacks_)["time_budget"]
    >>> bool(budget.spent_), budget.elapsed_ >= 0.5
    (True, True)
    """

    def on_train_begin(self, net, **kwargs):
        """Start the clock of this call.

        Parameters
        ----------
        net : skorch.NeuralNet
        **kwargs
            Ignored.
        """
        self.clock_ = CLOCKS[getattr(net, "clock", "process")]
        self.start_ = self.clock_()
        self.elapsed_ = 0.0
        self.steps_ = 0
        self.spent_ = False

    def fraction(self, net):
        """Share of the budget spent so far in this call, in [0, 1] (0 without one).

        Parameters
        ----------
        net : skorch.NeuralNet

        Returns
        -------
        fraction : float
        """
        max_time = getattr(net, "max_time", None)
        if max_time is None or not hasattr(self, "start_"):
            return 0.0
        return min(1.0, (self.clock_() - self.start_) / max_time)

    def until_spent(self, iterator):
        """The batches of ``iterator`` until the budget is spent (checked between batches).

        Parameters
        ----------
        iterator : iterable of batches

        Yields
        ------
        batch : object
        """
        for batch in iterator:
            if self.spent_:
                return
            yield batch

    def on_batch_end(self, net, training=None, **kwargs):
        """Count a training batch and mark the budget spent once it is.

        Parameters
        ----------
        net : skorch.NeuralNet
        training : bool
        **kwargs
            Ignored.
        """
        max_time = getattr(net, "max_time", None)
        if not training or max_time is None:
            return
        self.steps_ += 1
        self.elapsed_ = self.clock_() - self.start_
        self.spent_ = self.elapsed_ >= max_time

    def on_epoch_end(self, net, **kwargs):
        """End the call (as ``EarlyStopping`` does) once the budget is spent.

        Parameters
        ----------
        net : skorch.NeuralNet
        **kwargs
            Ignored.

        Raises
        ------
        KeyboardInterrupt
            Caught by skorch's ``partial_fit``, which then runs ``on_train_end``.
        """
        if self.spent_:
            if net.verbose:
                print(f"Stopping: the time budget of {net.max_time:g} s "
                      f"({getattr(net, 'clock', 'process')} clock) is spent after "
                      f"{self.steps_} steps.")
            raise KeyboardInterrupt
