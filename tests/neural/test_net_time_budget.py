"""N2SNet's training time budget (``max_time``, ``clock``): where it stops, the learning
rate over it, the net after it, and its parameter checks."""

import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skorch")
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from sklearn_n2s.neural import DilatedBlindSpotNet, N2SNet, _callbacks
from sklearn_n2s.neural._net import TIME_ONLY_STEPS


class FakeClock:
    """A clock that only moves when told to: one second per training batch."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class AdvanceEachBatch(Callback):
    """Moves the fake clock by ``seconds`` at each training batch, and records the
    budget's elapsed time after each batch (user callbacks run after the defaults)."""

    def __init__(self, clock, seconds=1.0):
        self.clock = clock
        self.seconds = seconds

    def on_train_begin(self, net, **kwargs):
        self.elapsed_ = []

    def on_batch_begin(self, net, training=None, **kwargs):
        if training:
            self.clock.now += self.seconds

    def on_batch_end(self, net, training=None, **kwargs):
        if training:
            self.elapsed_.append(dict(net.callbacks_)["time_budget"].elapsed_)


def images(n=40, side=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, side, side)).astype(np.float32)


def budget_net(fake, **params):
    recorder = AdvanceEachBatch(fake)
    net = N2SNet(module__width=4, batch_size=8, random_state=0, callbacks=[recorder],
                 **params)
    return net, recorder


@pytest.mark.parametrize("clock_name", ["process", "wall"])
def test_stops_after_the_batch_that_spends_the_budget(monkeypatch, clock_name):
    clock = FakeClock()
    monkeypatch.setitem(_callbacks.CLOCKS, clock_name, clock)
    # 40 images in batches of 8: 5 batches per epoch; 7.5 s at 1 s a batch: 8 batches,
    # the last one in the middle of the second epoch, which then closes normally.
    net, recorder = budget_net(clock, max_time=7.5, clock=clock_name)
    net.fit(images())
    budget = dict(net.callbacks_)["time_budget"]
    assert recorder.elapsed_ == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert budget.spent_ and budget.steps_ == 8 and budget.elapsed_ == 8.0
    assert len(net.history_) == 2
    assert [len(epoch["batches"]) for epoch in net.history_] == [5, 3]
    assert all(np.isfinite(epoch["train_loss"]) for epoch in net.history_)
    assert net.train_plan_["steps"] == TIME_ONLY_STEPS  # max_steps='auto': time alone


def test_the_other_clock_does_not_count(monkeypatch):
    clock = FakeClock()
    monkeypatch.setitem(_callbacks.CLOCKS, "wall", clock)  # only the wall clock moves
    net, recorder = budget_net(clock, max_time=1e6, clock="process", max_steps=6)
    net.fit(images())
    budget = dict(net.callbacks_)["time_budget"]
    # the process clock saw a real, tiny CPU time: the step budget ended the fit
    assert budget.steps_ == 6 and not budget.spent_ and budget.elapsed_ < 1e3


def test_a_step_budget_that_ends_first_wins(monkeypatch):
    clock = FakeClock()
    monkeypatch.setitem(_callbacks.CLOCKS, "process", clock)
    net, _ = budget_net(clock, max_time=100.0, max_steps=3)
    net.fit(images())
    assert sum(len(epoch["batches"]) for epoch in net.history_) == 3
    assert not dict(net.callbacks_)["time_budget"].spent_


def test_cosine_schedule_runs_over_the_time_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setitem(_callbacks.CLOCKS, "process", clock)
    net, _ = budget_net(clock, max_time=40.0, lr=1e-2)
    net.fit(images())
    lrs = np.array([batch["event_lr"] for epoch in net.history_
                    for batch in epoch["batches"]])
    assert len(lrs) == 40
    # the lr of batch k is set once k - 1 seconds of the 40 are spent: a warm-up over
    # the first 5% (2 s), then the cosine of the time fraction, down to about 0
    expected = [1e-2 * _callbacks.warmup_cosine_factor(0, TIME_ONLY_STEPS, 0.05, k / 40)
                for k in range(40)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6, atol=1e-12)
    assert lrs.argmax() == 2 and lrs[-1] < 1e-2 * 0.01
    assert net.optimizer_.param_groups[0]["lr"] == 1e-2  # base lr restored


def test_time_fraction_zero_keeps_the_step_schedule():
    for step in (0, 3, 50, 99):
        assert _callbacks.warmup_cosine_factor(step, 100, 0.05, 0.0) == \
            _callbacks.warmup_cosine_factor(step, 100)


def test_net_is_usable_and_partial_fit_gets_a_new_budget():
    X = images(16)
    start = time.process_time()
    net = N2SNet(DilatedBlindSpotNet, module__width=4, module__depth=1, batch_size=8,
                 max_time=0.3, random_state=0).fit(X)
    budget = dict(net.callbacks_)["time_budget"]
    assert budget.spent_ and 0.3 <= budget.elapsed_ <= time.process_time() - start
    out = net.transform(X)
    assert out.shape == X.shape and out.dtype == X.dtype and np.isfinite(out).all()
    epochs = len(net.history_)
    net.set_params(max_time=0.2, clock="wall").partial_fit(X)
    assert budget.spent_ and budget.elapsed_ >= 0.2 and len(net.history_) > epochs
    assert np.isfinite(net.invariant_transform(X)).all()


@pytest.mark.parametrize("params", [
    {"max_time": 0}, {"max_time": -1.0}, {"max_time": "1 minute"},
    {"clock": "cpu"}, {"clock": None},
])
def test_bad_time_budget_is_refused_before_training(params):
    with pytest.raises(InvalidParameterError, match="max_time|clock"):
        N2SNet(**params).fit(images(4))
