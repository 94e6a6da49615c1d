import numpy as np
import pytest
import torch

from sarb_mm.evaluation import multilabel_prf, voc_average_precision


def _voc_ap_reference(score, label, valid=None):
    """Slow single-class VOC 2010+ AP in the classic devkit structure."""
    idx = [i for i in range(len(score)) if valid is None or valid[i]]
    npos = sum(1 for i in idx if label[i] > 0)
    if npos == 0:
        return float('nan')
    # Python's sort is stable: tied images stay in their original order.
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


def test_ap_ties_stable_order():
    # Both classes have the same scores; image 0 and 1 tie at 0.5.
    # Stable order ranks image 0 first, then 1, then 2.
    # class 0, labels (0, 1, 1): ranks neg, pos, pos
    #   precision 0, 1/2, 2/3 -> interpolated 2/3, 2/3, 2/3
    #   AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3
    # class 1, labels (1, 0, 1): ranks pos, neg, pos
    #   precision 1, 1/2, 2/3 -> interpolated 1, 2/3, 2/3
    #   AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    # Same positives among the tied images, different answers: the order
    # in which ties are broken matters.
    scores = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.2]])
    labels = np.array([[0, 1], [1, 0], [1, 1]])
    np.testing.assert_allclose(
        voc_average_precision(scores, labels), [2 / 3, 5 / 6])


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
    valid = np.array([[False, True], [True, False], [True, True],
                      [True, True]])
    # Unmasked class 0: neg, pos, neg, pos -> precision 0, 1/2, 1/3, 1/2
    #   interpolated at the positives: 1/2, 1/2 -> AP = 1/2.
    # Masked class 0 (image 0 removed): pos, neg, pos
    #   precision 1, 1/2, 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    # Masked class 1 (positive image 1 removed): pos, neg, pos -> 5/6.
    np.testing.assert_allclose(
        voc_average_precision(scores, labels)[0], 0.5)
    np.testing.assert_allclose(
        voc_average_precision(scores, labels, valid), [5 / 6, 5 / 6])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_ap_matches_reference_loop(seed):
    rng = np.random.default_rng(seed)
    n, c = 60, 9
    # Few distinct scores -> many ties.
    scores = rng.integers(0, 6, size=(n, c)) / 5
    labels = rng.choice([-1, 0, 1], size=(n, c), p=[0.1, 0.6, 0.3])
    labels[:, 0] = 0  # one class without positives
    valid = rng.random((n, c)) > 0.15
    for mask in (None, valid):
        expected = [
            _voc_ap_reference(scores[:, k], labels[:, k],
                              None if mask is None else mask[:, k])
            for k in range(c)
        ]
        np.testing.assert_allclose(
            voc_average_precision(scores, labels, mask),
            expected,
            equal_nan=True)


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
