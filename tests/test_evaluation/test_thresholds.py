"""Best-F1 thresholds against a brute-force search, and their file."""
import numpy as np
import pytest

from sarb_mm.evaluation.thresholds import (best_f1_thresholds, load_thresholds,
                                           save_thresholds)


def brute_force(score, target):
    """Every candidate threshold by a plain loop; the highest of the best."""
    best_thr, best_f1 = None, -1.0
    for thr in sorted(set(score[target >= 0]), reverse=True):
        tp = fp = fn = 0
        for s, t in zip(score, target):
            if t < 0:
                continue
            predicted = s >= thr
            tp += predicted and t == 1
            fp += predicted and t == 0
            fn += (not predicted) and t == 1
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best_f1:
            best_thr, best_f1 = thr, f1
    return best_thr, best_f1


def test_best_f1_equals_a_brute_force_search():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((60, 7)), 1)  # many ties
    targets = rng.choice([-1, 0, 0, 1], size=(60, 7))
    targets[:, 6] = np.where(targets[:, 6] == 1, 0, targets[:, 6])
    thresholds, f1 = best_f1_thresholds(scores, targets, default=0.5)
    for c in range(6):
        thr, value = brute_force(scores[:, c], targets[:, c])
        assert thresholds[c] == thr
        assert f1[c] == pytest.approx(value)
    # No known positive: the default, and no F1.
    assert thresholds[6] == 0.5 and np.isnan(f1[6])


def test_threshold_file_round_trip_and_checks(tmp_path):
    path = str(tmp_path / 'thresholds.json')
    save_thresholds(path, ['cat', 'dog'], [0.25, 0.75], source='val.npz')
    np.testing.assert_array_equal(
        load_thresholds(path, ['cat', 'dog']), [0.25, 0.75])
    with pytest.raises(ValueError, match='other classes'):
        load_thresholds(path, ['cat', 'cow'])
    save_thresholds(path, ['cat', 'dog'], [0.25, 1.5])
    with pytest.raises(ValueError, match='2 thresholds in \\[0, 1\\]'):
        load_thresholds(path, ['cat', 'dog'])
    (tmp_path / 'bad.json').write_text('{"classes": ')
    with pytest.raises(ValueError, match='is not JSON'):
        load_thresholds(str(tmp_path / 'bad.json'), ['cat'])


def test_nan_scores_are_never_predicted():
    scores = np.array([[0.9], [0.2], [np.nan], [np.nan]])
    targets = np.array([[1], [0], [1], [1]])
    thresholds, f1 = best_f1_thresholds(scores, targets)
    # Only 0.9 (tp 1, fn 2: F1 0.5) or 0.2 (tp 1, fp 1, fn 2: F1 0.4).
    assert thresholds[0] == 0.9 and f1[0] == pytest.approx(0.5)
    only_nan, _ = best_f1_thresholds(np.array([[np.nan]]), np.array([[1]]))
    assert only_nan[0] == 0.5


def test_thresholds_must_be_numbers():
    from sarb_mm.evaluation.thresholds import check_thresholds
    for bad in (['0.1', '0.2'], [True, False], [0.1], [0.1, float('nan')]):
        with pytest.raises(ValueError, match='2 thresholds'):
            check_thresholds(bad, 2, 'thr')
    assert check_thresholds([0, 1], 2, 'thr').tolist() == [0.0, 1.0]
