"""The run-time estimate: the cost of each work unit and the clock's time left, checked against
their formulas with a clock that advances by known seconds."""

from __future__ import annotations

import pytest
import torch

from napari_ddip.recon import estimate
from napari_ddip.recon.estimate import BACKWARD, UnitCosts, WorkClock, network_seconds


def test_unit_costs_add_the_network_the_consistency_and_the_adaptation_per_slice() -> None:
    costs = UnitCosts(net=0.5, consistency=0.1, train=2.0)
    assert costs.sampling(4) == pytest.approx(4 * (0.5 + 0.1))
    assert costs.adaptation(3) == pytest.approx(3 * 2.0)
    assert UnitCosts(net=0.5, consistency=0.1).adaptation(3) == 0.0  # does not adapt
    dps = UnitCosts(net=0.5, consistency=0.1, guidance=True)  # plus a backward pass
    assert dps.sampling(4) == pytest.approx(4 * ((1 + BACKWARD) * 0.5 + 0.1))


def test_a_network_call_is_timed_once_per_key() -> None:
    calls: list[int] = []
    key = ("test_estimate", object())
    first = network_seconds(key, lambda: calls.append(1), torch.device("cpu"))
    again = network_seconds(key, lambda: calls.append(1), torch.device("cpu"))
    assert len(calls) == 2 and first == again >= 0  # one warm-up call and one timed call


class _Seconds:
    """A stand-in for ``time.perf_counter`` that the test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def seconds(monkeypatch) -> _Seconds:
    clock = _Seconds()
    monkeypatch.setattr(estimate.time, "perf_counter", clock)
    return clock


@pytest.mark.parametrize("rate", [1.0, 3.0])
def test_the_time_left_follows_the_measured_rate_weighed_with_the_estimates(seconds, rate) -> None:
    """Ten units of 2 estimated seconds each, done at ``rate`` real seconds per estimated
    second after a first unit that also warms up (10 s): the time left is the estimated work
    left at ``(s + w)/(c + w)``, s and c the seconds and the estimated cost since the first
    unit, w a tenth of the estimate."""
    clock = WorkClock(total=10, total_cost=20.0, nfe=5)
    assert clock.eta(0.0) == 20.0  # before any work: the estimate
    seconds.now += 10.0
    first = clock.advance(2.0, 0)
    assert (first.step, first.total, first.elapsed, first.eta) == (1, 10, 10.0, 18.0)
    weight = 0.1 * 20.0
    for done in range(2, 11):
        seconds.now += rate * 2.0
        progress = clock.advance(2.0, done // 2)
        since, cost, left = rate * 2.0 * (done - 1), 2.0 * (done - 1), 20.0 - 2.0 * done
        assert progress.elapsed == pytest.approx(10.0 + since)
        assert progress.eta == pytest.approx((since + weight) / (cost + weight) * left)
        assert progress.step == done and progress.sampling_steps == 5
        assert progress.sampling_step == done // 2 + 1
        if rate == 1.0:  # at the estimated rate, the estimated work left
            assert progress.eta == pytest.approx(left)
    assert progress.eta == 0.0


def test_dropped_work_leaves_the_count_and_the_time_left(seconds) -> None:
    """Work that will not be done (an adaptation ended by the discrepancy principle) leaves
    the total, so that progress still ends at its total and the time left shrinks."""
    clock = WorkClock(total=10, total_cost=20.0, nfe=5)
    seconds.now += 2.0
    clock.advance(2.0, 0)
    before = clock.eta(2.0)
    clock.drop(4, 8.0)
    assert (clock.total, clock.total_cost) == (6, 12.0)
    assert clock.eta(2.0) == pytest.approx(before - 8.0)
    for _ in range(5):
        seconds.now += 2.0
        last = clock.advance(2.0, 1)
    assert (last.step, last.total) == (6, 6) and last.eta == 0.0
