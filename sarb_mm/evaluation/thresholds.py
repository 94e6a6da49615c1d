"""Per-class decision thresholds: the best-F1 one of each class.

One threshold for every class (0.5) suits the frequent classes and leaves
rare ones without any prediction: their scores rarely reach it although
they rank the images well (a high AP). Choosing each class's threshold to
maximise its F1 on a validation set fixes that; the thresholds are stored
as a small JSON file beside the checkpoint, which ``tools/infer.py --thr
best-f1`` (and :class:`~sarb_mm.apis.MultiLabelInferencer`) use.
"""
import json
import os
import os.path as osp
from typing import Sequence, Tuple

import numpy as np

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.paths import atomic_path, check_input_file

#: The file ``--thr best-f1`` looks for beside the checkpoint.
THRESHOLDS_FILE = 'thresholds.json'
# A thresholds file is a few numbers per class.
_MAX_FILE_BYTES = 64 * 2**20


def best_f1_thresholds(scores: np.ndarray,
                       targets: np.ndarray,
                       default: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """The threshold of each class that maximises its F1.

    A label is predicted where its score is at least the threshold. The
    candidates are the class's known scores; ties in F1 go to the higher
    threshold (fewer predictions).

    Args:
        scores (np.ndarray): (N, C) scores.
        targets (np.ndarray): (N, C) 1 positive, 0 negative, -1 unknown or
            ignored (left out).
        default (float): The threshold of a class without a known positive.

    Returns:
        tuple[np.ndarray, np.ndarray]: (C,) thresholds and (C,) the F1 each
        reaches on these scores (NaN for a class without a known positive).
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    num_classes = scores.shape[1]
    thresholds = np.full(num_classes, float(default))
    best = np.full(num_classes, np.nan)
    for c in range(num_classes):
        known = targets[:, c] >= 0
        score, positive = scores[known, c], targets[known, c] == 1
        if not positive.any():
            continue
        order = np.argsort(-score, kind='stable')
        score, positive = score[order], positive[order]
        tp = np.cumsum(positive)
        fp = np.cumsum(~positive)
        # Cut after the last of each run of equal scores: everything
        # scoring at least that value is predicted.
        last = np.flatnonzero(np.r_[score[1:] != score[:-1], True])
        last = last[np.isfinite(score[last])]  # NaN is never predicted
        if not len(last):
            continue
        f1 = 2 * tp[last] / (tp[last] + fp[last] + positive.sum())
        pick = last[int(np.argmax(f1))]  # the first maximum: higher thr
        thresholds[c], best[c] = score[pick], f1.max()
    return thresholds, best


def save_thresholds(path: str, classes: Sequence[str],
                    thresholds: Sequence[float], **meta) -> None:
    """Write thresholds as JSON (``classes``, ``thresholds`` and ``meta``
    such as where they come from), through a temporary file."""
    data = dict(
        classes=[str(c) for c in classes],
        thresholds=[float(t) for t in thresholds],
        **meta)
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        json.dump(data, f, indent=1)


def load_thresholds(path: str, classes: Sequence[str]) -> np.ndarray:
    """Read a thresholds file and check it against the model's classes.

    Raises:
        InvalidInputError: Naming the file and what does not fit.
    """
    check_input_file(path, 'Thresholds file')
    if os.path.getsize(path) > _MAX_FILE_BYTES:
        raise InvalidInputError(
            f'Thresholds file {path} is larger than a thresholds file can '
            'be; make it with tools/analysis/class_thresholds.py.')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InvalidInputError(
            f'Thresholds file {path} is not JSON ({err}); make it with '
            'tools/analysis/class_thresholds.py.') from None
    if not isinstance(data, dict) or not isinstance(
            data.get('classes'), list) or not isinstance(
                data.get('thresholds'), list):
        raise InvalidInputError(
            f'Thresholds file {path} must hold "classes" and "thresholds" '
            'lists; make it with tools/analysis/class_thresholds.py.')
    if data['classes'] != [str(c) for c in classes]:
        raise InvalidInputError(
            f'Thresholds file {path} is for other classes '
            f'({len(data["classes"])} classes, starting '
            f'{data["classes"][:3]}) than the model '
            f'({len(classes)}, starting {list(classes)[:3]}); make it from '
            'a validation run of this model.')
    return check_thresholds(data['thresholds'], len(classes), path)


def check_thresholds(values, num_classes: int, where: str) -> np.ndarray:
    """``values`` as a (C,) float array of numbers in [0, 1]."""
    try:
        raw = np.asarray(values)
        array = raw.astype(np.float64) if raw.dtype.kind in 'iuf' else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (
            num_classes, ) or not (np.isfinite(array).all() and
                                   (array >= 0).all() and (array <= 1).all()):
        raise InvalidInputError(
            f'{where}: expected {num_classes} thresholds in [0, 1] (one per '
            'class, scores are sigmoids).')
    return array


def thresholds_beside(checkpoint: str) -> str:
    """Where ``--thr best-f1`` finds the thresholds of ``checkpoint``."""
    return osp.join(osp.dirname(osp.abspath(checkpoint)), THRESHOLDS_FILE)
