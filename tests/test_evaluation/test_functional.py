import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_curve

from sarb_mm.evaluation import multilabel_prf, voc_average_precision
from sarb_mm.evaluation.functional import topk_mask


def _devkit_ap(score, label, valid=None):
    """Slow single-class VOC 2010+ AP in the classic devkit structure.

    It ranks images one by one, so it is a reference only without ties.
    """
    idx = [i for i in range(len(score)) if valid is None or valid[i]]
    npos = sum(1 for i in idx if label[i] > 0)
    if npos == 0:
        return float('nan')
    idx = sorted(idx, key=lambda i: -score[i])
    tp = np.cumsum([1.0 if label[i] > 0 else 0.0 for i in idx])
    fp = np.cumsum([0.0 if label[i] > 0 else 1.0 for i in idx])
    rec = tp / npos
    prec = tp / (tp + fp)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _sklearn_ap(score, label, valid=None):
    """Single-class AP from scikit-learn's precision/recall curve.

    ``precision_recall_curve`` has one point per distinct score (a tie is
    one threshold). Its precision is made non-increasing from the right and
    AP is the sum of the recall steps times that precision.
    """
    if valid is not None:
        score, label = score[valid], label[valid]
    y_true = label > 0
    if not y_true.any():
        return float('nan')
    precision, recall, _ = precision_recall_curve(y_true, score)
    precision, recall = precision[::-1], recall[::-1]  # recall increasing
    interpolated = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * interpolated[1:]))


def _tied_data(seed, n=60, c=9):
    rng = np.random.default_rng(seed)
    # Scores rounded to one decimal: many ties within each class.
    scores = np.round(rng.random((n, c)), 1)
    labels = rng.choice([-1, 0, 1], size=(n, c), p=[0.1, 0.6, 0.3])
    labels[:, 0] = 0  # one class without positives
    valid = rng.random((n, c)) > 0.15
    return scores, labels, valid


def test_ap_ties_are_one_operating_point():
    # Both classes have the same scores; images 0 and 1 tie at 0.5 and hold
    # one positive and one negative, in a different image order per class.
    # The tie is one point: TP 1, FP 1 -> P 1/2 at R 1/2; then 0.2 adds a
    # positive -> P 2/3 at R 1. Interpolated: 2/3, 2/3.
    # AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3 for both (a stable sort gave 2/3 for
    # class 0 and 5/6 for class 1: the image order decided).
    scores = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.2]])
    labels = np.array([[0, 1], [1, 0], [1, 1]])
    np.testing.assert_allclose(
        voc_average_precision(scores, labels), [2 / 3, 2 / 3])


def test_ap_perfect_reversed_and_missing():
    scores = np.array([0.9, 0.8, 0.3, 0.1])[:, None].repeat(3, axis=1)
    labels = np.array([
        [1, 0, 0],
        [1, 0, 0],
        [0, 1, -1],
        [0, 1, 0],
    ])
    ap = voc_average_precision(scores, labels)
    # class 0: positives ranked first -> AP = 1.
    # class 1 (reversed): ranks neg, neg, pos, pos
    #   precision 0, 0, 1/3, 2/4 -> interpolated 1/2, 1/2, 1/2, 1/2
    #   AP = 1/2 * 1/2 + 1/2 * 1/2 = 1/2 (non-interpolated would be 5/12)
    # class 2: -1 counts as negative, no positive -> NaN.
    np.testing.assert_allclose(ap[:2], [1.0, 0.5])
    assert np.isnan(ap[2])


def test_ap_valid_mask():
    scores = np.array([0.9, 0.8, 0.7, 0.6])[:, None].repeat(2, axis=1)
    labels = np.array([[0, 1], [1, 1], [0, 0], [1, 1]])
    valid = np.array([[False, True], [True, False], [True, True], [True,
                                                                   True]])
    # Unmasked class 0: neg, pos, neg, pos -> precision 0, 1/2, 1/3, 1/2
    #   interpolated at the positives: 1/2, 1/2 -> AP = 1/2.
    # Masked class 0 (image 0 removed): pos, neg, pos
    #   precision 1, 1/2, 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    # Masked class 1 (positive image 1 removed): pos, neg, pos -> 5/6.
    np.testing.assert_allclose(voc_average_precision(scores, labels)[0], 0.5)
    np.testing.assert_allclose(
        voc_average_precision(scores, labels, valid), [5 / 6, 5 / 6])


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_ap_matches_sklearn_curve_with_ties_and_mask(seed):
    scores, labels, valid = _tied_data(seed)
    for mask in (None, valid):
        expected = [
            _sklearn_ap(scores[:, k], labels[:, k],
                        None if mask is None else mask[:, k])
            for k in range(scores.shape[1])
        ]
        np.testing.assert_allclose(
            voc_average_precision(scores, labels, mask),
            expected,
            rtol=1e-12,
            equal_nan=True)


@pytest.mark.parametrize('seed', [0, 1])
def test_ap_without_ties_is_the_ranking_definition(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random((50, 6))  # continuous: no ties
    labels = rng.choice([-1, 0, 1], size=(50, 6), p=[0.1, 0.6, 0.3])
    valid = rng.random((50, 6)) > 0.2
    for mask in (None, valid):
        expected = [
            _devkit_ap(scores[:, k], labels[:, k],
                       None if mask is None else mask[:, k]) for k in range(6)
        ]
        np.testing.assert_allclose(
            voc_average_precision(scores, labels, mask),
            expected,
            rtol=1e-12,
            equal_nan=True)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_ap_and_prf_do_not_depend_on_image_order(seed):
    scores, labels, valid = _tied_data(seed, n=200, c=7)
    ap = voc_average_precision(scores, labels, valid)
    prf = multilabel_prf(scores, labels, thr=0.5, topk=2, valid=valid)
    rng = np.random.default_rng(100 + seed)
    for _ in range(5):
        perm = rng.permutation(len(scores))
        # Bit-identical, not only close.
        np.testing.assert_array_equal(
            voc_average_precision(scores[perm], labels[perm], valid[perm]), ap)
        assert multilabel_prf(
            scores[perm], labels[perm], thr=0.5, topk=2,
            valid=valid[perm]) == prf


def test_ap_infinite_scores_are_ranked():
    inf = np.inf
    scores = np.array([
        [-inf, inf, 0.1],
        [0.3, inf, -inf],
        [inf, 0.5, -inf],
        [0.9, -inf, 0.2],
    ])
    labels = np.array([
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [1, 0, 1],
    ])
    # class 0: +inf (pos), .9 (pos), .3, -inf -> positives first -> 1.
    # class 1: the two +inf tie (one pos, one neg): P 1/2 at R 1/2; .5
    #   (pos) -> P 2/3 at R 1; -inf (neg) P 1/2 -> interpolated 2/3, 2/3
    #   -> AP 2/3.
    # class 2: .2 (pos) P 1 at R 1/2; .1 (neg) P 1/2; the two -inf tie
    #   (one pos, one neg): P 2/4 at R 1 -> AP 1/2 * 1 + 1/2 * 1/2 = 3/4
    #   (ranking the -inf images by image order would give 5/6).
    np.testing.assert_allclose(
        voc_average_precision(scores, labels), [1, 2 / 3, 3 / 4])
    np.testing.assert_allclose(
        voc_average_precision(scores[::-1], labels[::-1]), [1, 2 / 3, 3 / 4])


def test_nan_scores_are_an_error_with_count_and_first_image():
    scores = np.random.default_rng(0).random((6, 4))
    scores[2, 1] = scores[4, 0] = scores[4, 3] = np.nan
    labels = np.eye(6, 4, dtype=np.int64)
    for fn in (voc_average_precision, multilabel_prf):
        with pytest.raises(
                ValueError,
                match=r'3 NaN value\(s\) in 2 of 6 image\(s\); the first '
                r'is image \(row\) 2, class \(column\) 1'):
            fn(scores, labels)


def test_ap_keeps_float64_and_widens_bfloat16():
    # float64 sigmoid of logits > 16.6 are distinct (float32 rounds all of
    # them to 1.0): negatives 17.2, 17.4 below positives 19, 21 -> AP 1.
    logits = torch.tensor([[17.2], [19.0], [17.4], [21.0]],
                          dtype=torch.float64)
    labels = torch.tensor([[0], [1], [0], [1]])
    np.testing.assert_array_equal(
        voc_average_precision(torch.sigmoid(logits), labels), [1.0])
    # bfloat16 has no numpy counterpart; it is widened, not rejected.
    scores = torch.tensor([[0.25], [0.75]], dtype=torch.bfloat16)
    np.testing.assert_array_equal(
        voc_average_precision(scores, torch.tensor([[0], [1]])), [1.0])


def test_ap_of_no_image_is_nan():
    ap = voc_average_precision(np.zeros((0, 3)), np.zeros((0, 3)))
    assert ap.shape == (3, ) and np.isnan(ap).all()


def test_ap_accepts_tensors_and_checks_shapes():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    labels = torch.tensor([[1, 0], [0, 1]])
    np.testing.assert_allclose(voc_average_precision(scores, labels), [1, 1])
    with pytest.raises(ValueError, match=r'\(2, 2\) and \(2, 3\)'):
        voc_average_precision(scores, torch.zeros(2, 3))
    with pytest.raises(ValueError, match='2-D'):
        voc_average_precision(scores[0], labels[0])
    with pytest.raises(ValueError, match='valid'):
        voc_average_precision(scores, labels, valid=np.ones((3, 2), bool))


# 3 images x 4 classes; class 3 has no positive.
PRF_SCORES = np.array([
    [0.9, 0.6, 0.4, 0.1],
    [0.7, 0.8, 0.55, 0.6],
    [0.2, 0.3, 0.65, 0.52],
])
PRF_LABELS = np.array([
    [1, 0, 1, 0],
    [1, 1, 0, 0],
    [0, 0, 1, 0],
])


def test_prf_threshold():
    # thr 0.5 -> predicted: img0 {0, 1}, img1 {0, 1, 2, 3}, img2 {2, 3}
    #   class 0: pred 2, TP 2, pos 2 -> P 1,   R 1
    #   class 1: pred 2, TP 1, pos 1 -> P 1/2, R 1
    #   class 2: pred 2, TP 1, pos 2 -> P 1/2, R 1/2
    #   class 3: pred 2, TP 0, pos 0 -> left out of CP / CR
    # OP = 4/8, OR = 4/5, OF1 = 2 * 0.4 / 1.3 = 8/13
    # CP = (1 + 1/2 + 1/2) / 3 = 2/3, CR = (1 + 1 + 1/2) / 3 = 5/6
    # CF1 = 2 * 2/3 * 5/6 / (2/3 + 5/6) = 20/27
    out = multilabel_prf(PRF_SCORES, PRF_LABELS, thr=0.5)
    np.testing.assert_allclose(out,
                               [1 / 2, 4 / 5, 8 / 13, 2 / 3, 5 / 6, 20 / 27])


def test_prf_top3():
    # top-3 AND >= 0.5:
    #   img0 top-3 {0, 1, 2}, 0.4 fails thr -> {0, 1}
    #   img1 top-3 {1 (.8), 0 (.7), 3 (.6)}, class 2 (.55) drops out
    #   img2 top-3 {2, 3, 1}, 0.3 fails thr -> {2, 3}
    #   class 0: pred 2, TP 2 -> P 1,   R 1
    #   class 1: pred 2, TP 1 -> P 1/2, R 1
    #   class 2: pred 1, TP 1 -> P 1,   R 1/2
    # OP = 4/7, OR = 4/5, OF1 = (32/35) / (48/35) = 2/3
    # CP = 5/6, CR = 5/6, CF1 = 5/6
    out = multilabel_prf(PRF_SCORES, PRF_LABELS, thr=0.5, topk=3)
    np.testing.assert_allclose(out, [4 / 7, 4 / 5, 2 / 3, 5 / 6, 5 / 6, 5 / 6])


def test_prf_zero_divisions_ties_and_valid():
    # Nothing reaches the threshold: every quotient is 0/x or 0/0 -> 0.
    assert multilabel_prf(PRF_SCORES, PRF_LABELS, thr=0.95) == (0.0, ) * 6
    # Three-way tie with top-1: the lowest class index wins.
    # Predicted {class 0}; positives {0, 2}:
    #   OP = 1/1, OR = 1/2, OF1 = 2/3
    #   class 0 P 1 R 1; class 2 P 0 (no prediction) R 0; class 1 left out
    #   CP = 1/2, CR = 1/2, CF1 = 1/2
    out = multilabel_prf([[0.5, 0.5, 0.5]], [[1, 0, 1]], thr=0.0, topk=1)
    np.testing.assert_allclose(out, [1, 1 / 2, 2 / 3, 1 / 2, 1 / 2, 1 / 2])
    # Masking class 2 leaves only class 0: everything is 1.
    out = multilabel_prf([[0.5, 0.5, 0.5]], [[1, 0, 1]],
                         thr=0.0,
                         topk=1,
                         valid=[[True, True, False]])
    np.testing.assert_allclose(out, [1] * 6)
    with pytest.raises(ValueError, match='shape'):
        multilabel_prf(PRF_SCORES, PRF_LABELS[:2])


@pytest.mark.parametrize('seed', [0, 1])
def test_topk_mask_is_a_stable_sort_by_class_index(seed):
    rng = np.random.default_rng(seed)
    # Few distinct values and infinities: many ties inside each image.
    scores = rng.choice([-np.inf, 0.0, 0.2, 0.5, np.inf], size=(300, 7))
    for k in range(1, 9):
        order = np.argsort(-scores, axis=1, kind='stable')[:, :k]
        expected = np.zeros(scores.shape, dtype=bool)
        np.put_along_axis(expected, order, True, axis=1)
        np.testing.assert_array_equal(topk_mask(scores, k), expected)


def test_prf_rejects_bad_thr_and_topk():
    for topk in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='`topk` must be None or a '):
            multilabel_prf(PRF_SCORES, PRF_LABELS, topk=topk)
    with pytest.raises(ValueError, match='`thr` must be a real number'):
        multilabel_prf(PRF_SCORES, PRF_LABELS, thr=float('nan'))
