"""Verdict rules on known inputs: each says yes, no and inconclusive where it should."""

import math

import numpy as np
import pytest

from lgtransfer.verdicts import (
    FAILS,
    INCONCLUSIVE,
    REPRODUCES,
    no_transfer,
    paired_above,
    t_interval,
    transfer,
    within,
)


def test_t_interval_on_known_inputs():
    iv = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(2) = 4.303
    assert (iv.mean, iv.n) == (2.0, 3)
    assert math.isclose(iv.hi - iv.mean, 4.303 / math.sqrt(3), rel_tol=1e-9)
    assert math.isclose(iv.mean - iv.lo, 4.303 / math.sqrt(3), rel_tol=1e-9)
    assert str(iv) == "+2.000 [-0.484, +4.484] (n = 3)"
    one = t_interval([0.4, float("nan")])
    assert one.n == 1 and math.isnan(one.lo) and "no interval" in str(one)
    assert t_interval([]).n == 0


@pytest.mark.parametrize("gains, outcome", [
    ([0.30, 0.40, 0.50], REPRODUCES),      # clearly above 0 and above the minimum effect
    ([0.00, 0.01, -0.01], FAILS),          # the whole interval below the minimum effect
    ([0.02, 0.025, 0.015], FAILS),         # real (above 0) but too small to count
    ([0.0, 0.5, 0.1], INCONCLUSIVE),       # too noisy for 3 seeds either way
    ([0.5], INCONCLUSIVE),                 # one seed: no interval, no verdict
])
def test_transfer_rule(gains, outcome):
    assert transfer(gains, 0.05).outcome == outcome


@pytest.mark.parametrize("gains, outcome", [
    ([0.00, 0.01, -0.01], REPRODUCES),     # credibly below the margin
    ([0.30, 0.40, 0.50], FAILS),           # a real gain: the control transfers
    ([0.0, 0.3, 0.0], INCONCLUSIVE),       # covers 0, but that is not evidence of no effect
    ([0.0, 0.0], REPRODUCES),              # exactly zero twice
])
def test_no_transfer_rule_is_an_equivalence_test(gains, outcome):
    assert no_transfer(gains, 0.05).outcome == outcome


def test_paired_rule_uses_the_seeds_both_sides_have():
    both = {0: 0.6, 1: 0.7, 2: 0.8, 3: 0.1}
    single = {0: 0.3, 1: 0.4, 2: 0.5}  # seed 3 has no pair: left out
    v = paired_above(both, single, 0.05)
    assert v.outcome == REPRODUCES and v.measured.n == 3
    assert np.isclose(v.measured.mean, 0.3) and "difference" in v.rule
    assert paired_above(single, both, 0.05).outcome == FAILS


@pytest.mark.parametrize("a, b, outcome", [
    ({0: 0.0, 1: 0.0, 2: 0.0}, {0: 0.0, 1: 0.0, 2: 0.0}, REPRODUCES),    # both gain nothing
    ({0: 0.50, 1: 0.51, 2: 0.49}, {0: 0.50, 1: 0.50, 2: 0.50}, REPRODUCES),
    ({0: 0.6, 1: 0.7, 2: 0.8}, {0: 0.1, 1: 0.1, 2: 0.2}, FAILS),          # A gains more
    ({0: 0.1, 1: 0.1, 2: 0.2}, {0: 0.6, 1: 0.7, 2: 0.8}, FAILS),          # B gains more
    ({0: 0.0, 1: 0.4, 2: 0.1}, {0: 0.1, 1: 0.0, 2: 0.1}, INCONCLUSIVE),   # too noisy
])
def test_within_rule_is_a_two_sided_equivalence_test(a, b, outcome):
    v = within(a, b, 0.05)
    assert v.outcome == outcome and "(-0.05, +0.05)" in v.rule
