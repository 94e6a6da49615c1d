"""Evaluation on partially labelled test data: known entries only.

The hand-computed example (also in docs/partial_data.md). Three classes,
four images, partial labels (1 positive, -1 negative, 0 unknown):

    image   scores (A, B, C)    labels (A, B, C)
    0       0.9  0.2  0.3        1   0  -1
    1       0.8  0.9  0.6        0  -1   1
    2       0.7  0.4  0.2       -1   0   0
    3       0.6  0.1  0.8        1  -1   0

A, known entries ranked: 0.9 (+), 0.7 (-), 0.6 (+). Precision at the two
positives is 1 and 2/3, each adds recall 1/2: AP = 1/2 + 1/3 = 5/6. (Were
the unknown image 1 a negative: 0.9 +, 0.8 -, 0.7 -, 0.6 + gives
AP = 1/2 + 1/4 = 3/4.)
B has no known positive: excluded from mAP (reported), as today.
C, known entries: 0.6 (+), 0.3 (-): AP = 1. (Unknown image 3 as a
negative would rank first: AP = 1/2.)
mAP = (5/6 + 1) / 2 = 11/12.

At thr = 0.5, over known entries: A predicts images 0, 2, 3 (TP 2, 3
predictions, 2 positives), B predicts image 1 (a known negative: 1 FP),
C predicts image 1 (TP 1). OP = 3/5, OR = 3/3, OF1 = 3/4; CP = mean(2/3,
1) = 5/6, CR = 1 over the classes with a known positive (A, C), CF1 =
2 CP CR / (CP + CR) = 10/11.
"""
import itertools
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.runner import BaseLoop
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.datasets import JsonLinesPartialDataset, PartialLabelDataset
from sarb_mm.engine.hooks import PartialLabelHook
from sarb_mm.evaluation import (InterpolatedMultiLabelMetric, multilabel_prf,
                                voc_average_precision)
from sarb_mm.evaluation.functional import split_partial_targets
from tests.log_capture import collect_warnings

SCORES = np.array([[0.9, 0.2, 0.3], [0.8, 0.9, 0.6], [0.7, 0.4, 0.2],
                   [0.6, 0.1, 0.8]])
TARGETS = np.array([[1, 0, -1], [0, -1, 1], [-1, 0, 0], [1, -1, 0]])
CLASSES = ('A', 'B', 'C')
EXPECTED = {
    'mAP': 11 / 12 * 100,
    'OP': 60.0,
    'OR': 100.0,
    'OF1': 75.0,
    'CP': 5 / 6 * 100,
    'CR': 100.0,
    'CF1': 10 / 11 * 100,
}

_LOGGERS = itertools.count()


def fresh_warnings():
    """Warnings of a new MMLogger: ``collect_warnings`` only sees them while
    its logger is the latest one created, so each use gets a new name."""
    return collect_warnings(f'test-partial-eval-{next(_LOGGERS)}')


def test_functional_uses_known_entries_only():
    positive, known = split_partial_targets(TARGETS)
    ap = voc_average_precision(SCORES, positive, known)
    np.testing.assert_allclose(ap[[0, 2]], [5 / 6, 1.0])
    assert np.isnan(ap[1])
    prf = multilabel_prf(SCORES, positive, thr=0.5, valid=known)
    np.testing.assert_allclose(
        prf,
        [EXPECTED[k] / 100 for k in ('OP', 'OR', 'OF1', 'CP', 'CR', 'CF1')])
    # Counting the unknown entries as negatives gives other numbers.
    np.testing.assert_allclose(
        voc_average_precision(SCORES, positive)[[0, 2]], [3 / 4, 1 / 2])


@pytest.mark.parametrize('bad', [0.5, 2, np.nan])
def test_split_partial_targets_refuses_other_values(bad):
    targets = TARGETS.astype(float)
    targets[1, 1] = bad
    with pytest.raises(
            ValueError,
            match=r'1 \(known positive\), -1 \(known '
            r'negative\) or 0 \(unknown\), but 1 value'):
        split_partial_targets(targets)


def _samples(targets=TARGETS, scores=SCORES):
    samples = []
    for idx, (score, target) in enumerate(zip(scores, targets)):
        sample = DataSample(metainfo=dict(sample_idx=idx))
        sample.set_gt_label(np.flatnonzero(target > 0).tolist())
        sample.set_gt_score(torch.tensor(target, dtype=torch.float32))
        sample.set_pred_score(torch.tensor(score, dtype=torch.float64))
        samples.append(sample.to_dict())
    return samples


def _evaluate(samples, partial=True):
    metric = InterpolatedMultiLabelMetric(thr=0.5, topk=None, per_class=True)
    metric.dataset_meta = dict(classes=CLASSES, partial_labels=partial)
    metric.process(None, samples)
    with fresh_warnings() as warnings:
        results = metric.evaluate(len(samples))
    return {k.split('/')[-1]: v for k, v in results.items()}, warnings


def test_metric_leaves_unknown_entries_out():
    results, warnings = _evaluate(_samples())
    for key, value in EXPECTED.items():
        assert results[key] == pytest.approx(value), key
    assert results['AP_A'] == pytest.approx(5 / 6 * 100)
    assert results['AP_C'] == pytest.approx(100.0)
    assert np.isnan(results['AP_B'])
    assert warnings == [
        '1 class(es) have no (known) positive sample in the evaluated set '
        'and are left out of mAP: B'
    ]


def test_fully_known_gt_score_changes_nothing():
    full = np.where(TARGETS > 0, 1, -1)
    results, _ = _evaluate(_samples(targets=full))
    plain = []
    for sample in _samples(targets=full):
        sample.pop('gt_score')
        plain.append(sample)
    expected, _ = _evaluate(plain)
    assert results.keys() == expected.keys()
    for key in expected:  # AP_B is NaN in both
        np.testing.assert_equal(results[key], expected[key])


def test_one_hot_gt_score_of_a_full_dataset_keeps_its_negatives():
    # mmpretrain's data preprocessor with num_classes sets a one-hot
    # gt_score on fully labelled samples: its 0s are negatives.
    full = (TARGETS > 0).astype(np.float32)
    results, _ = _evaluate(_samples(targets=full), partial=False)
    plain = []
    for sample in _samples(targets=full):
        sample.pop('gt_score')
        plain.append(sample)
    expected, _ = _evaluate(plain, partial=False)
    for key in expected:
        np.testing.assert_equal(results[key], expected[key])
    # Read as partial labels, the same vectors would drop every negative.
    as_partial, _ = _evaluate(_samples(targets=full))
    assert as_partial['mAP'] != pytest.approx(expected['mAP'])


def test_partial_jsonl_test_set_end_to_end(tmp_path):
    """A JSON Lines test set through the test pipeline into the metric."""
    (tmp_path / 'classes.txt').write_text('A\nB\nC\n')
    lines = []
    for i, target in enumerate(TARGETS):
        pos = [CLASSES[c] for c in np.flatnonzero(target > 0)]
        neg = [CLASSES[c] for c in np.flatnonzero(target < 0)]
        lines.append(
            '{"img": "%d.jpg", "pos": %s, "neg": %s}' %
            (i, str(pos).replace("'", '"'), str(neg).replace("'", '"')))
    (tmp_path / 'test.jsonl').write_text('\n'.join(lines) + '\n')
    for packed in [(), ('gt_label_difficult', )]:
        dataset = JsonLinesPartialDataset(
            data_root=str(tmp_path),
            ann_file='test.jsonl',
            missing_images='unchecked',
            pipeline=[dict(type='PackInputs', algorithm_keys=packed)])
        batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
        samples = []
        for sample, score in zip(batch['data_samples'], SCORES):
            samples.append(
                sample.set_pred_score(torch.tensor(score)).to_dict())
        # The dataset's metainfo says its gt_score holds partial labels.
        results, _ = _evaluate(
            samples, partial=dataset.metainfo['partial_labels'])
        for key, value in EXPECTED.items():
            assert results[key] == pytest.approx(value), (packed, key)


@pytest.mark.parametrize('change, match', [
    (lambda s: s.update(gt_score=torch.tensor([1., 0.])),
     r'gt_score of the sample with sample_idx=0 has shape \(2,\), but '
     r'pred_score has 3 classes'),
    (lambda s: s.update(gt_score=torch.tensor([1., 0.5, -1.])),
     r'gt_score of the sample with sample_idx=0: Partial labels must be'),
    (lambda s: s.update(gt_label=torch.tensor([0, 1])),
     r'gt_label and gt_score of the sample with sample_idx=0 disagree on '
     r'class\(es\) \[1\]'),
])
def test_bad_gt_score_is_named(change, match):
    samples = _samples()
    change(samples[0])
    metric = InterpolatedMultiLabelMetric()
    metric.dataset_meta = dict(classes=CLASSES, partial_labels=True)
    with pytest.raises(ValueError, match=match):
        metric.process(None, samples)


class _Loop(BaseLoop):

    def run(self):
        """Never run: the hook only reads the loop's dataloader."""


def test_partial_label_hook_accepts_a_natively_partial_test_set(tmp_path):
    (tmp_path / 'classes.txt').write_text('A\nB\nC\n')
    (tmp_path / 'test.jsonl').write_text('{"img": "0.jpg", "pos": ["A"]}\n')
    cfg = dict(
        type='JsonLinesPartialDataset',
        data_root=str(tmp_path),
        ann_file='test.jsonl',
        missing_images='unchecked')
    runner = SimpleNamespace(
        model=SimpleNamespace(head=SimpleNamespace(num_classes=3)),
        work_dir=str(tmp_path),
        logger=MMLogger.get_instance('partial-eval-test'))
    runner._train_loop = None
    native = JsonLinesPartialDataset(**{
        k: v
        for k, v in cfg.items() if k != 'type'
    })
    runner._test_loop = _Loop(runner, SimpleNamespace(dataset=native))
    PartialLabelHook().before_run(runner)
    # Hiding labels of a test set on purpose is still refused.
    hidden = PartialLabelDataset(cfg, known_ratio=1.0)
    runner._test_loop = _Loop(runner, SimpleNamespace(dataset=hidden))
    with pytest.raises(
            ValueError, match=re.escape('test dataset is a PartialLabel')):
        PartialLabelHook().before_run(runner)
