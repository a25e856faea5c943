"""The compare map and its colours (shared by the viewer and exported comparisons)."""

from __future__ import annotations

import numpy as np

from segstudio.palette import (COMPARE, CORRECT, FALSE_POSITIVE, MISSED, WRONG_CLASS, colourise_compare,
                               compare_map)


def test_compare_map_marks_a_class_confused_with_another():
    #                  bg  TP  FP  FN  kidney as liver
    target = np.array([[0, 1, 0, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 2, 0, 1]], np.uint8)
    np.testing.assert_array_equal(compare_map(target, pred),
                                  [[0, CORRECT, FALSE_POSITIVE, MISSED, WRONG_CLASS]])
    rgb = colourise_compare(target, pred)
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    assert [tuple(int(c) for c in rgb[0, k]) for k in range(1, 5)] == [
        COMPARE[v][1] for v in (CORRECT, FALSE_POSITIVE, MISSED, WRONG_CLASS)]
    assert len({colour for _, colour in COMPARE.values()}) == 4  # four distinct colours
    assert COMPARE[WRONG_CLASS][0] == "wrong class"


def test_compare_map_of_scans():
    target = np.zeros((3, 4, 4), np.uint8)
    target[1, 1:3, 1:3] = 2
    pred = np.where(target > 0, 1, 0).astype(np.uint8)
    m = compare_map(target, pred)
    assert m.shape == (3, 4, 4) and (m == WRONG_CLASS).sum() == 4 and (m == MISSED).sum() == 0
