"""Per-class evaluation report and precision-recall curves.

The numbers follow :class:`~sarb_mm.evaluation.InterpolatedMultiLabelMetric`
exactly: AP is :func:`~sarb_mm.evaluation.voc_average_precision` (tied
scores are one operating point), a class is predicted when its score is
``>= thr``, entries > 0 in ``labels`` are positives and every other value
(0, -1) a negative, and ``valid == False`` entries (VOC "difficult" in
"ignore" mode) take no part in their class. Values are x 100, as the metric
reports them.
"""
import csv
import io
import math
import os
import os.path as osp
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from sarb_mm.utils.paths import atomic_open
from .functional import _check_inputs, _safe_div, voc_average_precision

#: Header of the CSV file, one column per field of :class:`ClassReport`.
REPORT_COLUMNS = ('class', 'index', 'AP', 'positives', 'predicted', 'TP',
                  'precision', 'recall', 'F1', 'status')
EXCLUDED = 'excluded: no positive in the evaluated set'


class ClassReport(NamedTuple):
    """One row of the per-class report (percentages x 100).

    ``ap`` is NaN for a class without any (valid) positive, which mAP leaves
    out; its ``status`` then says so.
    """
    name: str
    index: int
    ap: float
    positives: int
    predicted: int
    true_positives: int
    precision: float
    recall: float
    f1: float

    @property
    def excluded(self) -> bool:
        return self.positives == 0

    @property
    def status(self) -> str:
        return EXCLUDED if self.excluded else ''


def per_class_report(scores,
                     labels,
                     class_names: Optional[Sequence[str]] = None,
                     thr: float = 0.5,
                     valid=None,
                     ap: Optional[np.ndarray] = None) -> List[ClassReport]:
    """AP, counts and precision / recall / F1 at ``thr`` of every class.

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C).
        labels (np.ndarray | torch.Tensor): Labels of shape (N, C); entries
            ``> 0`` are positives, everything else (0, -1) negatives.
        class_names (Sequence[str], optional): C class names. Defaults to
            None (the class indices).
        thr (float): Score threshold of a prediction. Defaults to 0.5.
        valid (np.ndarray | torch.Tensor, optional): Bool mask (N, C);
            False entries are ignored for their class. Defaults to None.
        ap (np.ndarray, optional): The per-class AP in [0, 1] if the caller
            computed it already with :func:`voc_average_precision` on the
            same inputs. Defaults to None (computed here).

    Returns:
        list[ClassReport]: The classes sorted by AP, highest first (ties by
        class index), then the classes without a positive in index order.
        Precision is 0 for a class that is never predicted, F1 is 0 when
        precision and recall are both 0; a class without a positive has
        NaN AP, recall and F1.

    Raises:
        ValueError: If the inputs are malformed (see
            :func:`voc_average_precision`) or ``class_names`` does not have
            one name per column.
    """
    scores, positive, valid = _check_inputs(scores, labels, valid)
    num_classes = scores.shape[1]
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f'{len(class_names)} class names were given for '
                         f'scores with {num_classes} columns; give one name '
                         'per class.')
    if ap is None:
        ap = voc_average_precision(scores, positive, valid)
    # The same counting as multilabel_prf, kept per class.
    predicted = (scores >= thr) & valid
    positive = positive & valid
    num_tp = (predicted & positive).sum(axis=0)
    num_pred = predicted.sum(axis=0)
    num_pos = positive.sum(axis=0)
    precision = _safe_div(num_tp, num_pred)
    recall = _safe_div(num_tp, num_pos)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    # Recall (and so F1) of a class without positives is undefined; the
    # metric leaves such classes out of CR and CF1.
    recall[num_pos == 0] = np.nan
    f1[num_pos == 0] = np.nan
    rows = [
        ClassReport(
            str(class_names[c]), c, float(ap[c] * 100), int(num_pos[c]),
            int(num_pred[c]), int(num_tp[c]), float(precision[c] * 100),
            float(recall[c] * 100), float(f1[c] * 100))
        for c in range(num_classes)
    ]
    ranked = sorted((r for r in rows if not r.excluded),
                    key=lambda r: (-r.ap, r.index))
    return ranked + [r for r in rows if r.excluded]


def report_summary(rows: Sequence[ClassReport], thr: float) -> str:
    """One sentence: mAP over the classes with a positive, exclusions."""
    kept = [r.ap for r in rows if not r.excluded]
    excluded = [r.name for r in rows if r.excluded]
    text = (f'Per-class report at threshold {thr:g}: mAP '
            f'{np.mean(kept) if kept else float("nan"):.2f} over '
            f'{len(kept)} class(es)')
    if excluded:
        text += (f'; {len(excluded)} class(es) without a positive are '
                 f'excluded: {", ".join(excluded)}')
    return text + '.'


def _cells(row: ClassReport, digits: Optional[int]) -> List[str]:
    """The row's values as strings; ``digits=None`` keeps full precision
    (CSV), the table rounds."""

    def number(value: float) -> str:
        if math.isnan(value):
            return ''
        return repr(value) if digits is None else f'{value:.{digits}f}'

    return [
        row.name,
        str(row.index),
        number(row.ap),
        str(row.positives),
        str(row.predicted),
        str(row.true_positives),
        number(row.precision),
        number(row.recall),
        number(row.f1),
        row.status,
    ]


def format_report_table(rows: Sequence[ClassReport],
                        title: Optional[str] = None,
                        digits: int = 2) -> str:
    """Render the rows as a Markdown table with ``rich``.

    Markdown keeps the log file plain ASCII and the table pasteable into
    documents; ``rich`` is already required by mmengine and mmpretrain.

    Args:
        rows (Sequence[ClassReport]): Rows from :func:`per_class_report`.
        title (str, optional): A line printed above the table.
        digits (int): Decimals of the percentages. Defaults to 2.

    Returns:
        str: The table, lines joined by newlines, without colour codes.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.MARKDOWN, title=None, show_edge=True)
    for column in REPORT_COLUMNS:
        table.add_column(
            column,
            justify='left' if column in ('class', 'status') else 'right')
    for row in rows:
        # Text, not str: rich would read "[...]" in a class name as markup.
        table.add_row(*(Text(cell) for cell in _cells(row, digits)))
    buffer = io.StringIO()
    Console(
        file=buffer,
        width=10000,
        color_system=None,
        force_terminal=False,
        legacy_windows=False).print(table)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    text = '\n'.join(line for line in lines if line)
    return text if title is None else f'{title}\n{text}'


def write_report_csv(rows: Sequence[ClassReport], path: str) -> None:
    """Write the rows to ``path`` (CSV, header :data:`REPORT_COLUMNS`).

    Percentages keep full precision; the AP of an excluded class is empty.

    Raises:
        OSError: If the folder cannot be created.
        InvalidInputError: If the file cannot be written (a full disk
            leaves the previous file, never a truncated one).
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with atomic_open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(REPORT_COLUMNS)
        for row in rows:
            writer.writerow(_cells(row, None))


def precision_recall_points(
        scores,
        labels,
        valid=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve of one class, as scikit-learn computes it.

    Every distinct score is a threshold (tied scores are one operating
    point, as in :func:`voc_average_precision`); invalid entries are left
    out. The result equals ``sklearn.metrics.precision_recall_curve`` on the
    valid entries: precision and recall from the lowest threshold up, then
    the point (recall 0, precision 1).

    Args:
        scores (array-like): Scores of shape (N,).
        labels (array-like): Labels of shape (N,); ``> 0`` is positive.
        valid (array-like, optional): Bool mask of shape (N,). Defaults to
            None (all valid).

    Returns:
        tuple[np.ndarray]: ``(precision, recall, thresholds)``, the first two
        one longer than ``thresholds`` (which is increasing).

    Raises:
        ValueError: If the inputs are malformed or no valid entry is
            positive (the curve is undefined).
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1:
        raise ValueError('precision_recall_points takes the scores of one '
                         f'class, shape (N,); got shape {scores.shape}.')
    scores, positive, valid = _check_inputs(
        scores[:, None], labels.reshape(-1, 1),
        None if valid is None else np.asarray(valid).reshape(-1, 1))
    keep = valid[:, 0]
    scores, positive = scores[keep, 0], positive[keep, 0]
    if not positive.any():
        raise ValueError('The precision-recall curve is undefined for a '
                         'class without any (valid) positive.')
    order = np.argsort(-scores, kind='stable')
    scores, positive = scores[order], positive[order]
    # The last rank of each tie group is an operating point.
    ends = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1]
    tp = np.cumsum(positive)[ends]
    counted = ends + 1
    precision = tp / counted
    recall = tp / tp[-1]
    precision = np.r_[precision[::-1], 1.0]
    recall = np.r_[recall[::-1], 0.0]
    return precision, recall, scores[ends][::-1]


def interpolated_precision(precision: np.ndarray, recall: np.ndarray,
                           recall_grid: np.ndarray) -> np.ndarray:
    """The highest precision at recall ``>= r`` for each ``r`` of a grid.

    This is the interpolation of the VOC AP: the AP is the area under this
    step function of recall. The final point (recall 0, precision 1) that
    scikit-learn appends is no operating point and is left out.

    Args:
        precision (np.ndarray): From :func:`precision_recall_points`.
        recall (np.ndarray): From :func:`precision_recall_points`.
        recall_grid (np.ndarray): Recall values in [0, 1].

    Returns:
        np.ndarray: Interpolated precision, the shape of ``recall_grid``; 0
        beyond the highest recall.
    """
    precision, recall = precision[:-1], recall[:-1]
    order = np.argsort(recall, kind='stable')
    rec = recall[order]
    # Running maximum from the highest recall down.
    best = np.maximum.accumulate(precision[order][::-1])[::-1]
    at = np.searchsorted(rec, recall_grid, side='left')
    out = np.zeros(np.shape(recall_grid))
    inside = at < rec.size
    out[inside] = best[at[inside]]
    return out


def mean_interpolated_curve(
        scores,
        labels,
        valid=None,
        num_points: int = 101) -> Tuple[np.ndarray, np.ndarray, int]:
    """Macro mean over classes of the interpolated precision at each recall.

    Only classes with a (valid) positive take part, as in mAP. The area
    under the mean curve approaches mAP as ``num_points`` grows.

    Args:
        scores (array-like): Scores of shape (N, C).
        labels (array-like): Labels of shape (N, C).
        valid (array-like, optional): Bool mask of shape (N, C).
        num_points (int): Recall grid size, from 0 to 1. Defaults to 101.

    Returns:
        tuple: ``(recall_grid, mean_precision, num_classes_averaged)``.
    """
    scores, positive, valid = _check_inputs(scores, labels, valid)
    grid = np.linspace(0.0, 1.0, num_points)
    curves = []
    for c in range(scores.shape[1]):
        if not (positive[:, c] & valid[:, c]).any():
            continue
        precision, recall, _ = precision_recall_points(scores[:, c],
                                                       positive[:, c],
                                                       valid[:, c])
        curves.append(interpolated_precision(precision, recall, grid))
    if not curves:
        raise ValueError('No class has a positive, so there is no '
                         'precision-recall curve to average.')
    return grid, np.mean(curves, axis=0), len(curves)
