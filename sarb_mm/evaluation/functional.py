"""Vectorised multi-label metrics: VOC interpolated AP and P/R/F1.

Both functions work on whole ``(N, C)`` matrices at once (no Python loop over
classes or images), so the full COCO test set (40,137 x 80) takes a fraction of
a second. Inputs may be numpy arrays or torch tensors.
"""
from typing import Optional, Tuple

import numpy as np


def _to_numpy(x) -> np.ndarray:
    """Convert a torch tensor (any device) or array-like to a numpy array."""
    if hasattr(x, 'detach'):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_inputs(scores, labels, valid=None):
    """Return ``(scores, positive, valid)`` as numpy arrays of shape (N, C).

    Raises:
        ValueError: If the inputs are not 2-D or their shapes differ.
    """
    scores = _to_numpy(scores)
    labels = _to_numpy(labels)
    if scores.ndim != 2 or labels.ndim != 2:
        raise ValueError('`scores` and `labels` must be 2-D (N, C) arrays, '
                         f'got shapes {scores.shape} and {labels.shape}.')
    if scores.shape != labels.shape:
        raise ValueError('`scores` and `labels` must have the same shape, '
                         f'got {scores.shape} and {labels.shape}.')
    if valid is None:
        valid = np.ones(scores.shape, dtype=bool)
    else:
        valid = _to_numpy(valid).astype(bool)
        if valid.shape != scores.shape:
            raise ValueError('`valid` must have the same shape as `scores` '
                             f'{scores.shape}, got {valid.shape}.')
    # -1 (unknown) and 0 are both negatives at test time.
    positive = labels > 0
    return scores.astype(np.float64), positive, valid


def voc_average_precision(scores, labels, valid=None) -> np.ndarray:
    """Per-class PASCAL VOC 2010+ all-point interpolated average precision.

    For each class, all images are ranked by score (descending; ties keep the
    original image order, i.e. a stable sort), and with cumulative TP/FP
    counts recall = TP / #positives and precision = TP / (TP + FP). Precision
    is made non-increasing from the right and AP is the sum, over the ranks
    where recall increases, of the recall step times the precision there.

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C).
        labels (np.ndarray | torch.Tensor): Labels of shape (N, C). Entries
            ``> 0`` are positives, everything else (0, -1, ...) negatives.
        valid (np.ndarray | torch.Tensor, optional): Bool mask of shape
            (N, C). A ``False`` entry takes no part in its class's AP (e.g.
            VOC "difficult" objects in "ignore" mode). Defaults to None (all
            entries valid).

    Returns:
        np.ndarray: AP of each class, shape (C,), in [0, 1]. A class without
        any (valid) positive gets NaN.
    """
    scores, positive, valid = _check_inputs(scores, labels, valid)

    order = np.argsort(-scores, axis=0, kind='stable')
    is_tp = np.take_along_axis(positive & valid, order, axis=0)
    is_fp = np.take_along_axis(~positive & valid, order, axis=0)
    tp = np.cumsum(is_tp, axis=0, dtype=np.float64)
    fp = np.cumsum(is_fp, axis=0, dtype=np.float64)
    num_pos = tp[-1] if len(tp) else np.zeros(scores.shape[1])

    # Invalid entries repeat the previous (TP, FP) pair, so they add neither a
    # new recall step nor a new precision value; leading invalid rows with
    # TP + FP = 0 get precision 0, which cannot raise the running maximum.
    precision = tp / np.maximum(tp + fp, 1.0)
    precision = np.flip(
        np.maximum.accumulate(np.flip(precision, axis=0), axis=0), axis=0)

    # Recall rises by exactly 1 / #pos at each true positive.
    with np.errstate(invalid='ignore', divide='ignore'):
        ap = (precision * is_tp).sum(axis=0) / num_pos
    ap[num_pos == 0] = np.nan
    return ap


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise ``num / den`` with 0 where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _f1(p: float, r: float) -> float:
    return float(_safe_div(2 * p * r, p + r))


def multilabel_prf(scores,
                   labels,
                   thr: float = 0.0,
                   topk: Optional[int] = None,
                   valid=None) -> Tuple[float, ...]:
    """Overall and per-class precision, recall and F1 for multi-label output.

    A class is predicted for an image when its score is ``>= thr``; with
    ``topk=k`` it must also be among that image's ``k`` highest scores (ties
    broken by class index, lower first).

    Conventions for empty denominators (all give 0, never NaN):

    - A class with no prediction has precision 0 (it still counts in CP).
    - Classes without any (valid) positive are left out of the CP and CR
      means, consistent with mAP leaving them out; their false positives
      still count in OP.
    - OP, OR, OF1, CF1 with a zero denominator are 0.

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C).
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
    """
    scores, positive, valid = _check_inputs(scores, labels, valid)

    predicted = scores >= thr
    if topk is not None and topk < scores.shape[1]:
        if topk < 1:
            raise ValueError(f'`topk` must be a positive integer, got {topk}.')
        top = np.argsort(-scores, axis=1, kind='stable')[:, :topk]
        eligible = np.zeros_like(predicted)
        np.put_along_axis(eligible, top, True, axis=1)
        predicted &= eligible

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
