"""Per-class report and precision-recall curves against scikit-learn."""
import csv
import logging
import math

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from sklearn.metrics import (average_precision_score, precision_recall_curve,
                             precision_recall_fscore_support)

from sarb_mm.evaluation import (InterpolatedMultiLabelMetric, multilabel_prf,
                                report, voc_average_precision)

CLASSES = ['cat', 'dog', 'bus', 'kite']
# 8 images x 4 classes. cat: precision never rises along the ranking (so
# VOC AP equals scikit-learn's non-interpolated AP), a positive tied with
# a negative at 0.7, a score exactly at the threshold 0.5 and a -1 entry
# (a negative at test time). dog: the top score is an ignored ("difficult")
# negative, and a positive-negative tie. bus: precision rises again after
# a drop, so interpolation matters; a tie across the threshold class. kite:
# no positive at all, excluded from mAP.
SCORES = np.array([
    [0.9, 0.95, 0.3, 0.2],
    [0.8, 0.6, 0.9, 0.7],
    [0.7, 0.6, 0.8, 0.1],
    [0.7, 0.4, 0.4, 0.6],
    [0.5, 0.3, 0.4, 0.5],
    [0.4, 0.2, 0.6, 0.3],
    [0.3, 0.1, 0.2, 0.9],
    [0.2, 0.05, 0.1, 0.4],
])
LABELS = np.array([
    [1, 0, 0, 0],
    [1, 1, 0, 0],
    [1, 0, 1, 0],
    [0, 1, 1, 0],
    [0, 0, 0, 0],
    [0, 0, 1, -1],
    [-1, 0, 0, 0],
    [0, 1, 0, 0],
])
VALID = np.ones(SCORES.shape, dtype=bool)
VALID[0, 1] = False  # dog's top score: an ignored negative
VALID[7, 2] = False  # an ignored bus negative
THR = 0.5


def sklearn_voc_ap(y_true, scores):
    """VOC all-point interpolated AP from scikit-learn's curve: precision
    made non-increasing in recall, then (recall step) x precision."""
    precision, recall, _ = precision_recall_curve(y_true, scores)
    # recall decreases along the arrays: the running maximum from the
    # start is the best precision at this recall or higher.
    interpolated = np.maximum.accumulate(precision)
    return float(np.sum(-np.diff(recall) * interpolated[:-1]))


def test_rows_against_sklearn():
    rows = report.per_class_report(SCORES, LABELS, CLASSES, THR, VALID)
    by_name = {r.name: r for r in rows}
    for c, name in enumerate(CLASSES[:3]):
        row = by_name[name]
        keep = VALID[:, c]
        y_true = LABELS[keep, c] > 0
        y_score = SCORES[keep, c]
        assert row.index == c
        assert row.ap == pytest.approx(sklearn_voc_ap(y_true, y_score) * 100)
        assert row.positives == y_true.sum()
        y_pred = y_score >= THR
        assert row.predicted == y_pred.sum()
        assert row.true_positives == (y_pred & y_true).sum()
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average='binary', zero_division=0.0)
        assert (row.precision, row.recall, row.f1) == pytest.approx(
            (p * 100, r * 100, f * 100))
    # cat's precision never rises, so it is scikit-learn's AP itself ...
    assert by_name['cat'].ap == pytest.approx(
        average_precision_score(LABELS[:, 0] > 0, SCORES[:, 0]) * 100)
    # ... while for bus the interpolation raises the AP.
    keep = VALID[:, 2]
    assert by_name['bus'].ap > average_precision_score(
        LABELS[keep, 2] > 0, SCORES[keep, 2]) * 100 + 1
    # Hand-checked: cat ranks P P (P,N tie) N N -> (1 + 1 + 3/4) / 3.
    assert by_name['cat'].ap == pytest.approx(275 / 3)


def test_rows_order_and_exclusion():
    rows = report.per_class_report(SCORES, LABELS, CLASSES, THR, VALID)
    kept = [r for r in rows if not r.excluded]
    assert [r.ap for r in kept] == sorted((r.ap for r in kept), reverse=True)
    last = rows[-1]
    assert last.name == 'kite' and last.excluded
    assert last.status == report.EXCLUDED
    assert math.isnan(last.ap) and math.isnan(last.recall)
    # Its false positives are real: 4 scores >= 0.5, precision 0.
    assert (last.positives, last.predicted, last.precision) == (0, 4, 0.0)
    # The AP is the metric's own, and the per-class precision / recall
    # average to the metric's CP / CR over the classes with a positive.
    np.testing.assert_allclose(
        [r.ap for r in sorted(kept, key=lambda r: r.index)],
        voc_average_precision(SCORES, LABELS, VALID)[:3] * 100)
    _, _, _, cp, cr, _ = multilabel_prf(SCORES, LABELS, THR, valid=VALID)
    assert np.mean([r.precision for r in kept]) == pytest.approx(cp * 100)
    assert np.mean([r.recall for r in kept]) == pytest.approx(cr * 100)


def test_rows_do_not_depend_on_image_order():
    order = np.random.default_rng(0).permutation(len(SCORES))
    shuffled = report.per_class_report(SCORES[order], LABELS[order], CLASSES,
                                       THR, VALID[order])
    rows = report.per_class_report(SCORES, LABELS, CLASSES, THR, VALID)
    # repr: NaN == NaN there, and floats must agree to the last bit.
    assert repr(shuffled) == repr(rows)


def test_class_names_must_match():
    with pytest.raises(
            ValueError,
            match='3 class names were given for '
            'scores with 4 columns'):
        report.per_class_report(SCORES, LABELS, CLASSES[:3])


def _parse_table(text):
    """Rows of a Markdown table as lists of cell strings (header first)."""
    lines = [ln for ln in text.splitlines() if ln.startswith('|')]
    cells = [[c.strip() for c in ln.strip('|').split('|')] for ln in lines]
    return [c for c in cells if not set(''.join(c)) <= set('-:')]


def test_table_and_csv(tmp_path):
    names = ['cat', 'dog [big]', 'bus', 'kite']  # "[...]" is rich markup
    rows = report.per_class_report(SCORES, LABELS, names, THR, VALID)
    table = _parse_table(report.format_report_table(rows, 'title'))
    path = tmp_path / 'sub' / 'report.csv'
    report.write_report_csv(rows, str(path))
    with open(path, newline='') as f:
        read = list(csv.reader(f))
    assert tuple(read[0]) == report.REPORT_COLUMNS == tuple(table[0])
    assert len(read) == len(table) == 5
    for row, line, shown in zip(rows, read[1:], table[1:]):
        assert line[0] == shown[0] == row.name
        assert int(line[1]) == int(shown[1]) == row.index
        for col, value in zip((2, 6, 7, 8),
                              (row.ap, row.precision, row.recall, row.f1)):
            if math.isnan(value):
                assert line[col] == shown[col] == ''
            else:
                assert float(line[col]) == value  # CSV: full precision
                assert shown[col] == f'{value:.2f}'
        assert line[9] == shown[9] == row.status


class _Infos(logging.Handler):

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _samples():
    """The hand-made case as the model's data samples: index lists, and
    the ignored entries as VOC "difficult" ones."""
    samples = []
    for i in range(len(SCORES)):
        samples.append(
            dict(
                pred_score=torch.from_numpy(SCORES[i]),
                gt_label=torch.from_numpy(np.flatnonzero(LABELS[i] > 0)),
                gt_label_difficult=torch.from_numpy(np.flatnonzero(~VALID[i])),
                sample_idx=i))
    return samples


def test_metric_report_file(tmp_path):
    path = tmp_path / 'out' / 'per_class.csv'
    metric = InterpolatedMultiLabelMetric(
        thr=THR, per_class=True, report_file=str(path))
    metric.dataset_meta = {'classes': CLASSES}
    logger = MMLogger.get_instance('sarb_test_report')
    infos = _Infos()
    logger.addHandler(infos)
    try:
        metric.process(None, _samples())
        out = metric.evaluate(len(SCORES))
    finally:
        logger.removeHandler(infos)
    with open(path, newline='') as f:
        read = list(csv.DictReader(f))
    assert [r['class'] for r in read] == [
        r.name
        for r in report.per_class_report(SCORES, LABELS, CLASSES, THR, VALID)
    ]
    for line in read:
        key = f"interp-multi-label/AP_{line['class']}"
        if line['AP']:
            assert float(line['AP']) == out[key]
        else:
            assert math.isnan(out[key]) and line['status'] == report.EXCLUDED
    logged = next(m for m in infos.messages if '| class' in m)
    mean_ap = np.mean([
        sklearn_voc_ap(LABELS[VALID[:, c], c] > 0, SCORES[VALID[:, c], c])
        for c in range(3)
    ]) * 100
    assert f'mAP {mean_ap:.2f} over 3 class(es)' in logged.splitlines()[0]
    assert 'excluded: kite' in logged.splitlines()[0]
    table = _parse_table(logged)
    assert [t[0] for t in table[1:]] == [r['class'] for r in read]
    assert [t[2] for t in table[1:]
            ] == [f"{float(r['AP']):.2f}" if r['AP'] else '' for r in read]


def test_metric_report_file_errors(tmp_path):
    with pytest.raises(
            ValueError,
            match='`report_file` must be None or '
            'the path of a .csv file'):
        InterpolatedMultiLabelMetric(report_file='report.txt')
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    metric = InterpolatedMultiLabelMetric(
        report_file=str(blocker / 'report.csv'))
    metric.process(None, _samples())
    with pytest.raises(
            ValueError, match='cannot write the per-class report '
            f'to {blocker}'):
        metric.evaluate(len(SCORES))


def test_curve_equals_sklearn():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random((200, 5)), 1)  # many ties
    labels = (rng.random((200, 5)) < 0.3).astype(int)
    labels[labels == 0] = rng.choice([0, -1], size=(labels == 0).sum())
    valid = rng.random((200, 5)) > 0.2
    for c in range(5):
        keep = valid[:, c]
        expected = precision_recall_curve(labels[keep, c] > 0, scores[keep, c])
        got = report.precision_recall_points(scores[:, c], labels[:, c],
                                             valid[:, c])
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match='without any \\(valid\\) positive'):
        report.precision_recall_points(SCORES[:, 3], LABELS[:, 3])


def test_interpolated_curve_area_is_the_ap():
    ap = voc_average_precision(SCORES, LABELS, VALID)
    for c in range(3):
        precision, recall, _ = report.precision_recall_points(
            SCORES[:, c], LABELS[:, c], VALID[:, c])
        # The step function is constant on (r_k-1, r_k]: its area is exact
        # on the grid of the curve's own recall values.
        steps = np.unique(recall[:-1])
        area = np.sum(
            np.diff(np.r_[0, steps]) *
            report.interpolated_precision(precision, recall, steps))
        assert area == pytest.approx(ap[c])
        assert report.interpolated_precision(precision, recall,
                                             np.array([1.0 + 1e-9]))[0] == 0
    grid, mean, num = report.mean_interpolated_curve(
        SCORES, LABELS, VALID, num_points=100001)
    assert num == 3  # kite has no positive
    assert np.trapezoid(mean, grid) == pytest.approx(np.nanmean(ap), abs=1e-4)
