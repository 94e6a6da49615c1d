import numpy as np
import pytest
import torch
from mmpretrain.registry import METRICS

from sarb_mm.evaluation import InterpolatedMultiLabelMetric

# 3 images x 4 classes, the same case as the P/R/F1 functional tests.
SCORES = torch.tensor([
    [0.9, 0.6, 0.4, 0.1],
    [0.7, 0.8, 0.55, 0.6],
    [0.2, 0.3, 0.65, 0.52],
])
GT_LABELS = [[0, 2], [0, 1], [2]]  # class 3 never positive
CLASSES = ('cat', 'dog', 'bus', 'kite')


def _samples(difficult=None):
    samples = []
    for i, gt in enumerate(GT_LABELS):
        sample = dict(pred_score=SCORES[i], gt_label=torch.tensor(gt))
        if difficult is not None:
            sample['gt_label_difficult'] = difficult[i]
        samples.append(sample)
    return samples


def test_metric_values(warnings_seen):
    metric = METRICS.build(dict(type='InterpolatedMultiLabelMetric'))
    assert isinstance(metric, InterpolatedMultiLabelMetric)
    metric.process(None, _samples()[:2])
    metric.process(None, _samples()[2:])
    out = metric.compute_metrics(metric.results)
    # AP per class:
    #   cat: scores (.9, .7, .2), labels (1, 1, 0) -> perfect -> 1
    #   dog: scores (.6, .8, .3), labels (0, 1, 0) -> top-ranked -> 1
    #   bus: scores (.4, .55, .65), labels (1, 0, 1)
    #        ranks pos, neg, pos -> 1/2 * 1 + 1/2 * 2/3 = 5/6
    #   kite: no positive -> left out, with a warning
    #   mAP = (1 + 1 + 5/6) / 3 = 17/18
    # P/R/F1 at 0.5 and top-3: see test_functional.test_prf_*.
    expected = {
        'mAP': 17 / 18,
        'OP': 1 / 2,
        'OR': 4 / 5,
        'OF1': 8 / 13,
        'CP': 2 / 3,
        'CR': 5 / 6,
        'CF1': 20 / 27,
        'OP_top3': 4 / 7,
        'OR_top3': 4 / 5,
        'OF1_top3': 2 / 3,
        'CP_top3': 5 / 6,
        'CR_top3': 5 / 6,
        'CF1_top3': 5 / 6,
    }
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert isinstance(out[key], float)
        assert out[key] == pytest.approx(value * 100), key
    assert any('3' in m and 'left out' in m for m in warnings_seen)


def test_metric_evaluate_per_class_and_difficult(warnings_seen):
    metric = InterpolatedMultiLabelMetric(topk=2, per_class=True)
    metric.dataset_meta = dict(classes=CLASSES)
    # Image 1 has difficult dog and bus. Its bus is not a positive -> ignored
    # for bus. Its dog is also in gt_label -> stays a positive (VOC devkit
    # convention); ignoring it would leave dog without positives (NaN).
    metric.process(None, _samples(difficult=[[], [1, 2], []]))
    out = metric.evaluate(size=3)
    # bus without image 1: ranks img2 (pos, .65), img0 (pos, .4) -> AP 1
    # (5/6 with image 1 counted, see test_metric_values)
    # mAP = (1 + 1 + 1) / 3 = 1
    assert out['interp-multi-label/mAP'] == pytest.approx(100.0)
    assert out['interp-multi-label/AP_cat'] == pytest.approx(100.0)
    assert out['interp-multi-label/AP_dog'] == pytest.approx(100.0)
    assert out['interp-multi-label/AP_bus'] == pytest.approx(100.0)
    assert np.isnan(out['interp-multi-label/AP_kite'])
    assert 'interp-multi-label/OP_top2' in out
    assert 'interp-multi-label/OP_top3' not in out
    assert any('kite' in m for m in warnings_seen)
    assert metric.results == []


def test_metric_rejects_bad_topk():
    with pytest.raises(ValueError):
        InterpolatedMultiLabelMetric(topk=0)
