"""The partial-label protocol (see the docs) as plain functions."""
import hashlib
import math
import numbers
from typing import Optional, Tuple

import numpy as np

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.npy import load_checked_npy


def validate_known_ratio(known_ratio) -> float:
    """Check that ``known_ratio`` is a number in (0, 1] and return it.

    Args:
        known_ratio: Proportion of labels kept known.

    Raises:
        InvalidInputError: If it is not a real number in (0, 1] (NaN
            included).
    """
    if isinstance(
            known_ratio,
            bool) or not isinstance(known_ratio,
                                    (int, float, np.floating, np.integer)):
        raise InvalidInputError(
            'known_ratio must be a number in (0, 1], got '
            f'{known_ratio!r} ({type(known_ratio).__name__}).')
    ratio = float(known_ratio)
    if math.isnan(ratio) or not 0.0 < ratio <= 1.0:
        raise InvalidInputError(
            f'known_ratio must be in (0, 1], got {ratio}. Use e.g. '
            'known_ratio=0.1 for 10% known labels.')
    return ratio


def validate_seed(seed, name: str = 'seed') -> int:
    """Check that a seed is an integer in [0, 2**32 - 1] and return it.

    The partial-label split is part of the experiment, so ``None`` (a new
    split in every run and, worse, in every process) is refused.

    Args:
        seed: The seed to check.
        name (str): How the error names the parameter.

    Raises:
        InvalidInputError: If it is None, not an integer (bool included)
            or out of numpy's seed range.
    """
    if seed is None:
        raise InvalidInputError(
            f'{name}=None is not allowed: the split of known labels is part '
            'of the experiment, and None would draw a different one in every '
            'run and in every process. Give an integer, e.g. 0 (published).')
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidInputError(
            f'{name} must be an integer in [0, 2**32 - 1], got '
            f'{seed!r} ({type(seed).__name__}).')
    if not 0 <= int(seed) < 2**32:
        raise InvalidInputError(
            f'{name} must be an integer in [0, 2**32 - 1], got {seed}.')
    return int(seed)


def split_fingerprint(partial_labels: np.ndarray) -> str:
    """SHA-256 of a -1/0/1 matrix (shape and values), as a hex string."""
    matrix = np.ascontiguousarray(partial_labels, dtype=np.int8)
    digest = hashlib.sha256(repr(matrix.shape).encode())
    digest.update(matrix.tobytes())
    return digest.hexdigest()


def make_partial_labels(labels: np.ndarray,
                        known_ratio: float,
                        seed: int = 0) -> np.ndarray:
    """Hide labels with the published protocol.

    ``U = RandomState(seed).random_sample(labels.shape)`` and an entry stays
    known where ``U < known_ratio``. ``U`` does not depend on the ratio, so
    the known sets are nested across ratios for one seed.

    Args:
        labels (np.ndarray): Full label matrix (N_img, C) with values 1
            (positive) and -1 (negative); 0 (already unknown, e.g. an
            ignored difficult object) stays 0.
        known_ratio (float): Proportion p in (0, 1] of entries kept.
        seed (int): Seed of numpy's legacy generator. Defaults to 0.

    Returns:
        np.ndarray: Matrix of the same shape and dtype with values -1/0/1.
    """
    ratio = validate_known_ratio(known_ratio)
    seed = validate_seed(seed)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InvalidInputError(
            'labels must be a 2-D (num_images, num_classes) matrix, got '
            f'shape {labels.shape}.')
    _check_values(labels, 'labels')
    draws = np.random.RandomState(seed).random_sample(labels.shape)
    return np.where(draws < ratio, labels, 0).astype(labels.dtype)


def load_partial_labels(
        path: str,
        expected_shape: Optional[Tuple[int, int]] = None,
        full_labels: Optional[np.ndarray] = None) -> np.ndarray:
    """Load and validate a saved partial-label matrix (``.npy``).

    The file is checked before its data is read (see
    :func:`sarb_mm.utils.npy.load_checked_npy`): a regular, plain ``.npy``
    file of integer or real dtype and of the expected shape.

    Args:
        path (str): The ``.npy`` file of shape (N_img, C), values -1/0/1.
        expected_shape (tuple, optional): (N_img, C) of the dataset.
        full_labels (np.ndarray, optional): The dataset's full labels; a
            known entry that contradicts them is an error.

    Returns:
        np.ndarray: The matrix as int8.

    Raises:
        MissingInputFileError: If the file does not exist (also a
            ``FileNotFoundError``).
        InvalidInputError: If it is not such a matrix or contradicts
            ``full_labels``.
    """
    name = f'partial_file {path!r}'
    matrix = load_checked_npy(
        path,
        'partial_file',
        (None, None) if expected_shape is None else expected_shape,
        fix='Give the path of a .npy matrix (num_images x num_classes, '
        'values -1/0/1) written with np.save, e.g. the partial_labels.npy '
        'of a run, or use known_ratio instead.',
        shape_note='The dataset needs (num_images, num_classes). Was it '
        'made for another dataset or split?')
    _check_values(matrix, name)
    matrix = matrix.astype(np.int8)
    if full_labels is not None:
        known = matrix != 0
        # Entries the dataset itself leaves unknown (ignored difficult
        # objects) cannot contradict anything.
        wrong = known & (full_labels != 0) & (matrix != full_labels)
        if wrong.any():
            img, cls = np.argwhere(wrong)[0]
            raise InvalidInputError(
                f'{name} disagrees with the dataset labels at '
                f'{int(wrong.sum())} known entries (first: image {img}, '
                f'class {cls}). It was made for another dataset or order.')
    return matrix


def _check_values(matrix: np.ndarray, name: str) -> None:
    # bool and complex are numbers to NumPy, but not -1/0/1 labels.
    if matrix.dtype.kind not in 'iuf':
        raise InvalidInputError(
            f'{name} must hold real numbers -1/0/1, got dtype '
            f'{matrix.dtype}.')
    if matrix.dtype.kind == 'f' and np.isnan(matrix).any():
        raise InvalidInputError(
            f'{name} contains NaN; allowed values are -1, 0, 1.')
    bad = ~np.isin(matrix, (-1, 0, 1))
    if bad.any():
        found = np.unique(matrix[bad])[:5].tolist()
        raise InvalidInputError(
            f'{name} has values {found} outside {{-1, 0, 1}}.')
