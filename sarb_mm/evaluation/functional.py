"""Vectorised multi-label metrics: VOC interpolated AP and P/R/F1.

Both functions work on whole ``(N, C)`` matrices at once (no Python loop over
classes or images), so the full COCO test set (40,137 x 80) takes a fraction of
a second. Inputs may be numpy arrays or torch tensors; scores are computed in
float64 (or wider), never narrowed.

Neither result depends on the order of the images: tied scores are handled
as one operating point (see :func:`voc_average_precision`), and the top-k
selection of :func:`multilabel_prf` breaks ties by class index only.
"""
import numbers
from typing import Optional, Tuple

import numpy as np


def _to_numpy(x) -> np.ndarray:
    """Convert a torch tensor (any device) or array-like to a numpy array.

    Floating tensors become float64 first: numpy has no bfloat16, and
    widening is exact, so no two scores can become equal on the way.
    """
    if hasattr(x, 'detach'):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()
        x = x.numpy()
    return np.asarray(x)


def _nan_message(name: str, nan: np.ndarray) -> str:
    """Describe where an ``(N, C)`` NaN mask is set, as a full sentence."""
    rows = np.flatnonzero(nan.any(axis=1))
    first_col = int(np.flatnonzero(nan[rows[0]])[0])
    return (f'`{name}` contains {int(nan.sum())} NaN value(s) in '
            f'{len(rows)} of {nan.shape[0]} image(s); the first is image '
            f'(row) {int(rows[0])}, class (column) {first_col}. NaN cannot '
            'be ranked: check the model outputs (NaN weights or a diverged '
            'run).')


def _check_inputs(scores, labels, valid=None):
    """Return ``(scores, positive, valid)`` as numpy arrays of shape (N, C).

    ``scores`` is float64 (or a wider float type it already had).

    Raises:
        ValueError: If the inputs are not real-valued 2-D arrays of one
            shape, or ``scores`` / ``labels`` contain NaN. ``+-inf`` scores
            are allowed and ranked first / last.
    """
    scores = _to_numpy(scores)
    labels = _to_numpy(labels)
    if scores.ndim != 2 or labels.ndim != 2:
        raise ValueError('`scores` and `labels` must be 2-D (N, C) arrays, '
                         f'got shapes {scores.shape} and {labels.shape}.')
    if scores.shape != labels.shape:
        raise ValueError('`scores` and `labels` must have the same shape, '
                         f'got {scores.shape} and {labels.shape}.')
    for name, array in (('scores', scores), ('labels', labels)):
        if array.dtype.kind not in 'biuf':
            raise ValueError(f'`{name}` must hold real numbers, got dtype '
                             f'{array.dtype}.')
    scores = scores.astype(
        np.promote_types(scores.dtype, np.float64), copy=False)
    nan = np.isnan(scores)
    if nan.any():
        raise ValueError(_nan_message('scores', nan))
    if labels.dtype.kind == 'f':
        nan = np.isnan(labels)
        if nan.any():
            raise ValueError(_nan_message('labels', nan))
    if valid is None:
        valid = np.ones(scores.shape, dtype=bool)
    else:
        valid = _to_numpy(valid).astype(bool)
        if valid.shape != scores.shape:
            raise ValueError('`valid` must have the same shape as `scores` '
                             f'{scores.shape}, got {valid.shape}.')
    # Every entry but a positive is a negative; unknown entries of partial
    # labels are left out through `valid` (see split_partial_targets).
    positive = labels > 0
    return scores, positive, valid


def split_partial_targets(targets) -> Tuple[np.ndarray, np.ndarray]:
    """Split -1/0/1 partial labels into positives and a known mask.

    In partial labels 1 is a known positive, -1 a known negative and 0
    unknown. An unknown entry is left out of evaluation, never counted as a
    negative: pass ``known`` as the ``valid`` mask of
    :func:`voc_average_precision` and :func:`multilabel_prf`, e.g.
    ``voc_average_precision(scores, *split_partial_targets(targets))``.

    Args:
        targets (np.ndarray | torch.Tensor): Partial labels of any shape
            with values in {-1, 0, 1}.

    Returns:
        tuple[np.ndarray, np.ndarray]: Bool arrays ``(positive, known)`` of
        the shape of ``targets``.

    Raises:
        ValueError: If ``targets`` is not real-valued or holds another value
            (NaN included).
    """
    targets = _to_numpy(targets)
    if targets.dtype.kind not in 'biuf':
        raise ValueError('Partial labels must hold real numbers -1/0/1, got '
                         f'dtype {targets.dtype}.')
    bad = ~np.isin(targets, (-1, 0, 1))
    if bad.any():
        found = np.unique(targets[bad])[:5].tolist()
        raise ValueError(
            f'Partial labels must be 1 (known positive), -1 (known '
            f'negative) or 0 (unknown), but {int(bad.sum())} value(s) are '
            f'not, e.g. {found}.')
    return targets > 0, targets != 0


def voc_average_precision(scores, labels, valid=None) -> np.ndarray:
    """Per-class PASCAL VOC 2010+ all-point interpolated average precision.

    For each class, the distinct score values are the operating points
    (thresholds), from the highest down: at each, TP and FP count every
    (valid) image whose score is ``>=`` that value, recall is
    TP / #positives and precision TP / (TP + FP). Precision is made
    non-increasing from the right over these points, and AP is the sum over
    the points of (the recall gained at that point) x (its interpolated
    precision).

    Tied scores are therefore one operating point, as in scikit-learn's
    ``precision_recall_curve``: the images of a tie enter the ranking
    together, so the result does not depend on the order of the images.
    Without ties this is the usual ranking-based definition exactly. The
    ranking comes from comparing scores, so ``+inf`` ranks first and
    ``-inf`` last (tied with each other like any equal scores).

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C). NaN is
            an error.
        labels (np.ndarray | torch.Tensor): Labels of shape (N, C). Entries
            ``> 0`` are positives, everything else (0, -1, ...) negatives.
        valid (np.ndarray | torch.Tensor, optional): Bool mask of shape
            (N, C). A ``False`` entry takes no part in its class's AP (e.g.
            VOC "difficult" objects in "ignore" mode, or the unknown entries
            of partial labels, see :func:`split_partial_targets`). Defaults
            to None (all entries valid).

    Returns:
        np.ndarray: AP of each class, shape (C,), in [0, 1]. A class without
        any (valid) positive gets NaN.

    Raises:
        ValueError: If the shapes differ or ``scores`` contains NaN.
    """
    scores, positive, valid = _check_inputs(scores, labels, valid)

    # Class-major rows: sorting and scanning along contiguous memory is
    # several times faster than along axis 0 of the (N, C) matrix. The sort
    # need not be stable: tied images form one operating point below.
    scores = np.ascontiguousarray(scores.T)
    order = np.argsort(-scores, axis=1)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    # One gather of a small code (0 ignored, 1 TP, 2 FP) instead of one per
    # boolean mask; the cumulative counts stay exact integers.
    code = valid.astype(np.int8) * (2 - positive.astype(np.int8))
    code = np.take_along_axis(np.ascontiguousarray(code.T), order, axis=1)
    tp = np.cumsum(code == 1, axis=1, dtype=np.int64)
    counted = np.cumsum(code != 0, axis=1, dtype=np.int64)
    num_pos = tp[:, -1] if tp.shape[1] else np.zeros(scores.shape[0])

    # Only the last rank of each tie group is an operating point. Other
    # ranks get precision 0, which cannot raise the running maximum taken
    # from the right; after it, every rank of a group carries the group's
    # interpolated precision. Invalid entries repeat the previous (TP, FP)
    # pair, adding no recall and no new precision value; leading invalid
    # ranks with nothing counted yet also get 0.
    group_end = np.ones(sorted_scores.shape, dtype=bool)
    group_end[:, :-1] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    precision = np.zeros(tp.shape)
    np.divide(tp, np.maximum(counted, 1), out=precision, where=group_end)
    precision = np.flip(
        np.maximum.accumulate(np.flip(precision, axis=1), axis=1), axis=1)

    # AP = sum over groups of (TP gained) x (interpolated precision) / #pos,
    # summed by parts as sum_i tp_i * (p_i - p_{i+1}) with p_N = 0: one
    # pass instead of finding each group's start. p is constant within a
    # group, so only group ends contribute, and there neither tp nor p
    # depends on the order of the images: the sum is bit-identical for any
    # image order.
    drop = np.empty_like(precision)
    np.subtract(precision[:, :-1], precision[:, 1:], out=drop[:, :-1])
    drop[:, -1:] = precision[:, -1:]
    drop *= tp
    with np.errstate(invalid='ignore', divide='ignore'):
        ap = drop.sum(axis=1) / num_pos
    ap[num_pos == 0] = np.nan
    return ap


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise ``num / den`` with 0 where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _f1(p: float, r: float) -> float:
    return float(_safe_div(2 * p * r, p + r))


def topk_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Mark each row's ``k`` highest scores, ties broken by column index.

    Equivalent to taking the first ``k`` columns of a stable descending
    sort of each row, but linear in the row length. Each row is handled on
    its own, so the result does not depend on the order of the rows.

    Args:
        scores (np.ndarray): Real scores of shape (N, C) without NaN.
        k (int): How many entries to mark per row, ``1 <= k``.

    Returns:
        np.ndarray: Bool mask of shape (N, C) with ``min(k, C)`` entries set
        in every row.
    """
    num_cols = scores.shape[1]
    if k >= num_cols:
        return np.ones(scores.shape, dtype=bool)
    # The k-th largest score of each row; everything above it is in, and
    # the lowest-indexed entries equal to it fill the remaining slots.
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
    above = scores > kth
    at_kth = scores == kth
    slots = k - above.sum(axis=1, keepdims=True)
    return above | (at_kth & (np.cumsum(at_kth, axis=1) <= slots))


def multilabel_prf(scores,
                   labels,
                   thr: float = 0.0,
                   topk: Optional[int] = None,
                   valid=None) -> Tuple[float, ...]:
    """Overall and per-class precision, recall and F1 for multi-label output.

    A class is predicted for an image when its score is ``>= thr``; with
    ``topk=k`` it must also be among that image's ``k`` highest scores (ties
    broken by class index, lower first). Every image is judged on its own
    scores, so the result does not depend on the order of the images.

    Conventions for empty denominators (all give 0, never NaN):

    - A class with no prediction has precision 0 (it still counts in CP).
    - Classes without any (valid) positive are left out of the CP and CR
      means, consistent with mAP leaving them out; their false positives
      still count in OP.
    - OP, OR, OF1, CF1 with a zero denominator are 0.

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C). NaN is
            an error; ``+-inf`` is allowed.
        labels (np.ndarray | torch.Tensor): Labels of shape (N, C); entries
            ``> 0`` are positives.
        thr (float): Score threshold. Use 0 for logits, 0.5 for sigmoid
            probabilities. Defaults to 0.0.
        topk (int, optional): Only each image's ``topk`` highest-scoring
            classes are eligible. Defaults to None (all eligible).
        valid (np.ndarray | torch.Tensor, optional): Bool mask (N, C); False
            entries are ignored for their class. They still occupy their
            top-k slot, since which classes an image predicts must not
            depend on the ground truth. Defaults to None.

    Returns:
        tuple[float]: ``(OP, OR, OF1, CP, CR, CF1)``, each in [0, 1]. CF1 is
        the F1 of CP and CR (as the published code computes it), not the
        mean of per-class F1.

    Raises:
        ValueError: If the shapes differ, ``scores`` contains NaN, ``thr``
            is NaN or ``topk`` is not a positive integer.
    """
    if topk is not None and (isinstance(
            topk, bool) or not isinstance(topk, numbers.Integral) or topk < 1):
        raise ValueError(
            f'`topk` must be None or a positive integer, got {topk!r}.')
    if not isinstance(thr, numbers.Real) or np.isnan(thr):
        raise ValueError(f'`thr` must be a real number, got {thr!r}.')
    scores, positive, valid = _check_inputs(scores, labels, valid)

    predicted = scores >= thr
    if topk is not None:
        predicted &= topk_mask(scores, int(topk))

    predicted &= valid
    positive = positive & valid
    num_tp = (predicted & positive).sum(axis=0)
    num_pred = predicted.sum(axis=0)
    num_pos = positive.sum(axis=0)

    op = float(_safe_div(num_tp.sum(), num_pred.sum()))
    o_r = float(_safe_div(num_tp.sum(), num_pos.sum()))

    has_pos = num_pos > 0
    if has_pos.any():
        cp = float(_safe_div(num_tp, num_pred)[has_pos].mean())
        cr = float(_safe_div(num_tp, num_pos)[has_pos].mean())
    else:
        cp = cr = 0.0
    return op, o_r, _f1(op, o_r), cp, cr, _f1(cp, cr)
