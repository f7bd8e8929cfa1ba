"""The key ranges that decide which keys of a load the workers are asked about."""

from __future__ import annotations

import numpy as np

from loaders.key_ranges import KeyRanges


def test_overlapping_and_touching_ranges_merge_and_only_keys_inside_some_range_may_be_present() -> None:
    ranges = KeyRanges([(50, 60), (10, 20), (15, 30), (30, 40), (100, 100)])
    values = np.array([9, 10, 25, 30, 40, 41, 49, 50, 60, 61, 99, 100, 101, -(2**63), 2**63 - 1])
    expected = [False, True, True, True, True, False, False, True, True, False, False, True, False, False, False]
    assert ranges.might_hold(values).tolist() == expected


def test_no_ranges_means_no_key_can_be_present() -> None:
    assert KeyRanges([]).might_hold(np.array([0, 1, 2**62])).tolist() == [False, False, False]
    assert KeyRanges([(1, 2)]).might_hold(np.array([], dtype=np.int64)).tolist() == []
