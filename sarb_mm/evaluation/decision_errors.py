"""Which images a multi-label model gets most wrong, and how.

At a threshold per class, a known positive scoring below its class's
threshold is a miss, a known negative scoring at or above it a false
alarm; unknown and ignored entries count as neither (as in the metric).
An image's margin is how far its wrong scores are from their thresholds,
summed: the images with the largest margins are the worst.
"""
from typing import List, NamedTuple

import numpy as np


class WrongLabel(NamedTuple):
    """One wrong decision: the class, its score and threshold."""
    index: int
    score: float
    threshold: float


class ImageErrors(NamedTuple):
    """The wrong decisions of one image (worst first within each list)."""
    image: int
    misses: List[WrongLabel]
    false_alarms: List[WrongLabel]
    margin: float


def decision_errors(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray,
                    thresholds: np.ndarray) -> List[ImageErrors]:
    """The misses and false alarms of every image.

    Args:
        scores (np.ndarray): (N, C) scores.
        labels (np.ndarray): (N, C) bool, positive.
        valid (np.ndarray): (N, C) bool, the entry is known (counted).
        thresholds (np.ndarray | float): (C,) or one threshold.

    Returns:
        list[ImageErrors]: One per image, in image order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    thr = np.broadcast_to(
        np.asarray(thresholds, dtype=np.float64), scores.shape[1:])
    predicted = scores >= thr
    missed = valid & labels & ~predicted
    alarmed = valid & ~labels & predicted
    out = []
    for i in range(len(scores)):
        misses = [
            WrongLabel(int(c), float(scores[i, c]), float(thr[c]))
            for c in np.flatnonzero(missed[i])
        ]
        alarms = [
            WrongLabel(int(c), float(scores[i, c]), float(thr[c]))
            for c in np.flatnonzero(alarmed[i])
        ]
        misses.sort(key=lambda w: w.score - w.threshold)
        alarms.sort(key=lambda w: w.threshold - w.score)
        margin = sum(w.threshold - w.score
                     for w in misses) + sum(w.score - w.threshold
                                            for w in alarms)
        out.append(ImageErrors(i, misses, alarms, float(margin)))
    return out


def worst_images(errors: List[ImageErrors], count: int) -> List[ImageErrors]:
    """The ``count`` images with the largest margins (ties: image order);
    images without a wrong decision are never listed."""
    wrong = [e for e in errors if e.misses or e.false_alarms]
    return sorted(wrong, key=lambda e: (-e.margin, e.image))[:count]
