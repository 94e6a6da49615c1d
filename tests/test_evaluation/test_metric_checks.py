"""InterpolatedMultiLabelMetric: float64, image-order invariance, and the
errors for malformed samples."""

import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample

from sarb_mm.evaluation import (InterpolatedMultiLabelMetric, multilabel_prf,
                                voc_average_precision)

PREFIX = 'interp-multi-label/'


def _sample(score, gt_label, sample_idx=None, **extra):
    sample = DataSample().set_pred_score(torch.as_tensor(score))
    sample.set_gt_label(gt_label)
    if sample_idx is not None:
        sample.set_metainfo(dict(sample_idx=sample_idx))
    for key, value in extra.items():
        sample.set_field(value, key)
    return sample.to_dict()


def _raw(score, gt_label, **extra):
    """A plain dict, bypassing DataSample's own label formatting."""
    return dict(pred_score=torch.as_tensor(score), gt_label=gt_label, **extra)


def test_confident_logits_keep_their_float64_order():
    # float32 rounds the sigmoid of a logit above ~16.6 to exactly 1.0.
    # Negatives at 17.2 / 17.4 and positives at 19 / 21 must still rank
    # apart: AP 100. In float32, 17.4, 19 and 21 tie at 1.0 (P 2/3 -> 66.7).
    logits = torch.tensor([17.2, 17.4, 19.0, 21.0], dtype=torch.float64)
    scores = torch.sigmoid(logits)
    assert scores.float()[1:].eq(1.0).all()  # the float32 tie
    metric = InterpolatedMultiLabelMetric(topk=None)
    metric.process(None, [
        _sample(scores[i:i + 1], [] if i < 2 else [0], sample_idx=i)
        for i in range(4)
    ])
    assert all(r['pred_score'].dtype == np.float64 for r in metric.results)
    seen = []
    compute = metric.compute_metrics

    def spy(results):
        seen.extend(r['pred_score'].dtype for r in results)
        return compute(results)

    metric.compute_metrics = spy
    # evaluate() goes through mmengine's collect_results (cpu path).
    out = metric.evaluate(size=4)
    assert seen == [np.dtype(np.float64)] * 4
    assert out[PREFIX + 'mAP'] == 100.0


def _tied_samples(seed, n=40, c=5):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random((n, c)), 1)  # many ties
    scores[rng.random((n, c)) < 0.05] = np.inf
    scores[rng.random((n, c)) < 0.05] = -np.inf
    labels = rng.random((n, c)) < 0.3
    difficult = rng.random((n, c)) < 0.1
    samples = [
        _sample(
            scores[i],
            np.flatnonzero(labels[i]).tolist(),
            sample_idx=i,
            gt_label_difficult=torch.as_tensor(np.flatnonzero(difficult[i])))
        for i in range(n)
    ]
    return samples, scores, labels, difficult & ~labels


@pytest.mark.parametrize('seed', [0, 1])
def test_metrics_do_not_depend_on_image_order(seed):
    samples, scores, labels, ignored = _tied_samples(seed)

    def run(order):
        metric = InterpolatedMultiLabelMetric(topk=2, per_class=True)
        metric.process(None, [samples[i] for i in order])
        return metric.evaluate(size=len(order))

    reference = run(range(len(samples)))
    rng = np.random.default_rng(seed)
    for _ in range(3):
        assert run(rng.permutation(len(samples))) == reference
    # And they are the functional values on the whole matrix.
    ap = voc_average_precision(scores, labels, ~ignored)
    assert reference[PREFIX + 'mAP'] == pytest.approx(np.nanmean(ap) * 100)
    prf = multilabel_prf(scores, labels, thr=0.5, topk=2, valid=~ignored)
    assert reference[PREFIX + 'CF1_top2'] == pytest.approx(prf[5] * 100)


def test_nan_score_names_the_sample_and_counts():
    scores = np.full((3, 4), 0.5)
    scores[1, [0, 2]] = np.nan
    scores[2, 3] = np.nan
    metric = InterpolatedMultiLabelMetric()
    samples = [_sample(scores[i], [0], sample_idx=10 + i) for i in range(3)]
    with pytest.raises(
            ValueError,
            match=r'the sample with sample_idx=11 has 2 NaN value\(s\) out '
            r'of 4 classes; in this batch 2 of 3 sample\(s\) have NaN '
            r'scores, 3 values in all'):
        metric.process(None, samples)
    assert metric.results == []
    # Without sample_idx the position in this process's stream is named.
    metric = InterpolatedMultiLabelMetric()
    with pytest.raises(ValueError, match=r'sample #1 of this process'):
        metric.process(None, [_raw(scores[0], [0]), _raw(scores[1], [0])])


def test_infinite_scores_are_ranked_not_rejected():
    inf = float('inf')
    metric = InterpolatedMultiLabelMetric(topk=None)
    # Column 0: +inf on the positive, -inf on a negative -> AP 1.
    # Column 1: the two -inf tie (one pos, one neg) after a negative at 0.2:
    #   P 0 at R 0, then P 1/3 at R 1 -> AP 1/3.
    metric.process(None, [
        _sample([inf, -inf], [0, 1], sample_idx=0),
        _sample([-inf, 0.2], [], sample_idx=1),
        _sample([0.1, -inf], [], sample_idx=2),
    ])
    out = metric.evaluate(size=3)
    assert out[PREFIX + 'mAP'] == pytest.approx((1 + 1 / 3) / 2 * 100)


def test_duplicate_class_names_keep_every_ap(warnings_seen):
    metric = InterpolatedMultiLabelMetric(topk=None, per_class=True)
    metric.dataset_meta = dict(classes=('cat', 'dog', 'cat'))
    # class 0: pos ranked first -> 100; class 1: pos ranked first -> 100;
    # class 2: neg (.9) above pos (.1) -> P 1/2 -> 50.
    metric.process(None, [
        _sample([0.9, 0.8, 0.9], [0, 1], sample_idx=0),
        _sample([0.1, 0.2, 0.1], [2], sample_idx=1),
    ])
    out = metric.evaluate(size=2)
    per_class = {k: v for k, v in out.items() if '/AP_' in k}
    assert per_class == {
        PREFIX + 'AP_cat[0]': 100.0,
        PREFIX + 'AP_dog': 100.0,
        PREFIX + 'AP_cat[2]': 50.0,
    }
    assert any("['cat']" in m and 'AP_<name>[<class index>]' in m
               for m in warnings_seen)


def test_nothing_evaluated_is_an_error():
    metric = InterpolatedMultiLabelMetric()
    with pytest.raises(ValueError, match='no sample was evaluated'):
        metric.evaluate(size=0)
    with pytest.raises(ValueError, match='no sample was evaluated'):
        metric.compute_metrics([])


@pytest.mark.parametrize('label, match', [
    ([0, 4], r'gt_label of the sample with sample_idx=7 has class '
     r'index\(es\) \[4\] outside \[0, 3\]'),
    ([-1], r'index\(es\) \[-1\] outside \[0, 3\].*mark the last class'),
    ([2, -3, -1], r'index\(es\) \[-3, -1\] outside'),
    (torch.tensor([0.0, 2.0]), 'integer class indices, got dtype '
     'float64'),
    (torch.tensor([True, False, True, False
                   ]), 'integer class indices, got dtype bool'),
    (torch.tensor([0, 1, 1, 0]), 'looks like a 0/1 vector over the 4 '
     'classes'),
    (torch.tensor([[0, 1]]), r'1-D list of class indices, got shape '
     r'\(1, 2\)'),
])
def test_bad_gt_label_is_named(label, match):
    metric = InterpolatedMultiLabelMetric()
    with pytest.raises(ValueError, match=match):
        metric.process(None, [_raw([0.1] * 4, label, sample_idx=7)])
    assert metric.results == []


def test_bad_difficult_and_missing_fields_are_named():
    metric = InterpolatedMultiLabelMetric()
    with pytest.raises(
            ValueError,
            match='gt_label_difficult of the sample with '
            'sample_idx=3 has class'):
        metric.process(None, [
            _raw(
                [0.1] * 4,
                torch.tensor([0]),
                sample_idx=3,
                gt_label_difficult=torch.tensor([-1]))
        ])
    with pytest.raises(
            ValueError, match='the sample with sample_idx=5 has no '
            'gt_label'):
        metric.process(None, [dict(pred_score=torch.zeros(4), sample_idx=5)])
    with pytest.raises(
            ValueError, match='the sample with sample_idx=6 has no '
            'pred_score'):
        metric.process(None, [dict(gt_label=torch.tensor([0]), sample_idx=6)])
    with pytest.raises(ValueError, match='must be a DataSample or a dict'):
        metric.process(None, [(torch.zeros(4), torch.tensor([0]))])


def test_score_width_must_agree():
    metric = InterpolatedMultiLabelMetric()
    metric.process(None, [_sample([0.1] * 4, [0], sample_idx=0)])
    with pytest.raises(
            ValueError,
            match='sample_idx=1 has 5 scores, but the earlier '
            'samples had 4'):
        metric.process(None, [_sample([0.1] * 5, [0], sample_idx=1)])
    with pytest.raises(ValueError, match=r'got shape \(2, 4\)'):
        metric.process(None, [_raw(torch.zeros(2, 4), [0], sample_idx=2)])
    with pytest.raises(ValueError, match='must hold real numbers'):
        metric.process(None, [_raw(torch.zeros(4, dtype=torch.bool), [0])])
    # A new evaluation may have another width (the old one was reset).
    metric.evaluate(size=1)
    metric.process(None, [_sample([0.1] * 5, [0], sample_idx=0)])

    metric = InterpolatedMultiLabelMetric()
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    with pytest.raises(
            ValueError,
            match='sample_idx=0 has 4 scores, but the '
            'dataset_meta lists 3 classes'):
        metric.process(None, [_sample([0.1] * 4, [0], sample_idx=0)])
    metric = InterpolatedMultiLabelMetric()
    with pytest.raises(ValueError, match='declares num_classes=3'):
        metric.process(None, [_raw([0.1] * 4, [0], num_classes=3)])
    # Collected results of different widths (another rank) are refused.
    with pytest.raises(ValueError, match='different widths'):
        metric.compute_metrics([
            dict(
                pred_score=np.zeros(w),
                gt_label=np.zeros(w, bool),
                valid=np.ones(w, bool)) for w in (3, 4)
        ])


@pytest.mark.parametrize('kwargs, match', [
    (dict(topk=0), '`topk` must be None or an integer >= 1, got 0'),
    (dict(topk=2.5), 'got 2.5'),
    (dict(topk=True), 'got True'),
    (dict(thr=float('nan')), '`thr` must be a real number'),
    (dict(per_class='yes'), '`per_class` must be True or False'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InterpolatedMultiLabelMetric(**kwargs)
