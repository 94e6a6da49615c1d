"""Category embeddings from GloVe (docs/data_preparation.md)."""
import itertools
import os
import stat
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from .errors import InvalidInputError, MissingInputFileError

# The 80 MS-COCO category names in ascending category-id order.
COCO_CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
                'train', 'truck', 'boat', 'traffic light', 'fire hydrant',
                'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
                'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
                'giraffe', 'backpack', 'umbrella', 'handbag', 'tie',
                'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
                'kite', 'baseball bat', 'baseball glove', 'skateboard',
                'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup',
                'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
                'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza',
                'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
                'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
                'keyboard', 'cell phone', 'microwave', 'oven', 'toaster',
                'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
                'teddy bear', 'hair drier', 'toothbrush')

# VOC names written as one token, split into the words GloVe knows.
SPLIT_NAMES = {
    'diningtable': 'dining table',
    'pottedplant': 'potted plant',
    'tvmonitor': 'tv monitor',
}
# Saved as float32: a larger value would become inf.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Rows closer than this (relative to the largest value) count as one.
_SAME_ROW_TOLERANCE = 1e-6
# How many classes a message names.
_SHOWN_CLASSES = 10


def check_class_embeddings(vectors: np.ndarray,
                           what: str,
                           names: Optional[Sequence[str]] = None,
                           fix: str = '') -> np.ndarray:
    """Refuse (C, E) class embeddings that cannot tell classes apart.

    The semantic decoupling attends with each class's embedding: an
    all-zero row gives its class a constant score, i.e. a uniform map
    (plain average pooling), and if every row is the same all classes get
    one map. Neither fails or shows in the loss; both usually come from
    a broken file (zero-padded rows, words the vectors lack).

    Args:
        vectors (np.ndarray): The (C, E) embeddings, finite.
        what (str): How messages name them, e.g. ``"word_vectors file
            'x.npy'"``.
        names (Sequence[str], optional): Class names in row order, to name
            the classes at fault beside their indices.
        fix (str): Sentence appended to the messages.

    Returns:
        np.ndarray: ``vectors``.

    Raises:
        InvalidInputError: Rows that are all zero (naming the classes), or
            all rows identical.
    """
    if vectors.ndim != 2 or vectors.size == 0:
        return vectors  # the width checks of the callers report these
    fix = f' {fix}' if fix else ''
    num_classes = vectors.shape[0]
    zero = np.flatnonzero(~np.any(vectors != 0, axis=1))
    if zero.size:
        listed = ', '.join(
            str(i) if names is None else f'{i} ({names[i]!r})'
            for i in zero[:_SHOWN_CLASSES])
        more = ', ...' if zero.size > _SHOWN_CLASSES else ''
        raise InvalidInputError(
            f'{what} has all-zero embeddings for {zero.size} of its '
            f'{num_classes} classes (indices from 0): {listed}{more}. '
            'A zero embedding gives its class a uniform attention map: the '
            f'class would not be located.{fix}')
    if num_classes > 1:
        values = vectors.astype(np.float64)
        spread = np.max(values.max(axis=0) - values.min(axis=0))
        if spread <= _SAME_ROW_TOLERANCE * np.abs(values).max():
            raise InvalidInputError(
                f'{what} holds one embedding for all its {num_classes} '
                'classes (every row is the same), so every class would get '
                f'the same attention map.{fix}')
    return vectors


def name_to_words(name: str) -> List[str]:
    """Words of a category name: lower case, split on space/_/-."""
    name = SPLIT_NAMES.get(name, name)
    return name.lower().replace('_', ' ').replace('-', ' ').split()


def read_glove(path: str,
               words: Iterable[str],
               dim: int = 300) -> Dict[str, np.ndarray]:
    """Read the vectors of ``words`` from a GloVe ``.txt`` file.

    Streams the file (the 840B file is ~5 GB) and keeps only what is asked.
    Tokens may contain spaces (a few in glove.840B do), so the vector is the
    last ``dim`` fields of a line and the token everything before.

    Raises:
        MissingInputFileError: If the file does not exist.
        InvalidInputError: If it is not a regular UTF-8 file, its first
            lines show vectors of another width than ``dim``, a line of a
            wanted word does not end in ``dim`` numbers, or wanted vectors
            hold NaN/inf (or values beyond the float32 range).
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise InvalidInputError(
            f'The vector width (--dim) must be a positive integer, got '
            f'{dim!r}.')
    check_glove_file(path)
    wanted = set(words)
    found: Dict[str, np.ndarray] = {}
    bad: List[str] = []
    line_no = 0
    try:
        _check_width(path, dim)
        with open(path, encoding='utf-8') as f:
            for line_no, line in enumerate(_glove_lines(f, path), 1):
                parts = line.rstrip('\n').rstrip(' ').split(' ')
                word = ' '.join(parts[:-dim])
                if word not in wanted or word in found:
                    continue
                try:
                    vector = np.asarray(parts[-dim:], dtype=np.float64)
                except ValueError:
                    raise InvalidInputError(
                        f'{path}:{line_no}: not a GloVe line of a word and '
                        f'{dim} numbers.') from None
                if not (np.abs(vector) <= _FLOAT32_MAX).all():
                    bad.append(f'{word!r} (line {line_no})')
                    continue
                found[word] = vector.astype(np.float32)
    except UnicodeDecodeError as err:
        where = f'line {line_no + 1}: ' if line_no else ''
        raise InvalidInputError(
            f'GloVe file {path!r} is not UTF-8 text ({where}{err.reason}); '
            'give the unzipped GloVe .txt file.') from None
    if bad:
        raise InvalidInputError(
            f'GloVe file {path!r} has NaN/inf values (or values beyond the '
            f'float32 range) in the vectors of {len(bad)} words: '
            f'{", ".join(bad)}. Fix those lines or use an intact GloVe '
            'file; such vectors would make every score NaN.')
    return found


def check_glove_file(path: str) -> None:
    """Raise unless ``path`` is an existing regular file (with the
    download hint)."""
    fix = ('Download e.g. glove.840B.300d.zip from '
           'https://nlp.stanford.edu/projects/glove/ and unzip it.')
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingInputFileError(
            f'GloVe file {path!r} does not exist. {fix}') from None
    if not stat.S_ISREG(mode):
        raise InvalidInputError(
            f'GloVe file {path!r} is not a regular file (a directory, FIFO '
            f'or device). Give the unzipped .txt file. {fix}')


def _check_width(path: str, dim: int, num_lines: int = 10) -> None:
    """Compare the vector width of the first lines with ``dim``: with a
    wrong width no token would be recognised, and every class would look
    missing.

    A line's width is the number of numbers it ends in; a numeric token
    (e.g. "1") adds one, so the smallest width of the first lines counts.
    """
    widths = []
    with open(path, encoding='utf-8') as f:
        for line in itertools.islice(_glove_lines(f, path), num_lines):
            numbers = 0
            for field in reversed(line.rstrip('\n').rstrip(' ').split(' ')):
                try:
                    float(field)
                except ValueError:
                    break
                numbers += 1
            widths.append(numbers)
    width = min(widths, default=0)
    if width == dim:
        return
    if width == 0:
        raise InvalidInputError(
            f'GloVe file {path!r} is not a GloVe text file: its first lines '
            'do not all end in numbers (expected a word and its vector on '
            'each line).')
    raise InvalidInputError(
        f'GloVe file {path!r} holds {width}-dimensional vectors (its first '
        f'lines end in {width} numbers), but the vector width (--dim) is '
        f'{dim}. Pass --dim {width}, or use a {dim}-d GloVe file (e.g. '
        'glove.840B.300d for 300).')


def build_word_vectors(class_names: Sequence[str],
                       glove_path: str,
                       dim: int = 300) -> np.ndarray:
    """(C, dim) embeddings: each name's word vectors averaged.

    Raises:
        InvalidInputError: Listing every class with words missing from the
            file, or from :func:`read_glove`, or classes whose embeddings
            are all zero or all the same
            (:func:`check_class_embeddings`).
    """
    words = {name: name_to_words(name) for name in class_names}
    vectors = read_glove(glove_path, (w for ws in words.values() for w in ws),
                         dim)
    missing = {
        name: [w for w in ws if w not in vectors]
        for name, ws in words.items()
        if not ws or any(w not in vectors for w in ws)
    }
    if missing:
        listing = '; '.join(f'{name!r}: {ws or "(no word)"}'
                            for name, ws in missing.items())
        raise InvalidInputError(
            f'{glove_path} lacks words of {len(missing)} classes: {listing}. '
            'Rename those classes (e.g. through a --classes file) to words '
            'GloVe knows.')
    # The mean in float64: float32 sums of large values could overflow.
    embeddings = np.stack([
        np.mean([vectors[w] for w in words[name]], axis=0, dtype=np.float64)
        for name in class_names
    ]).astype(np.float32)
    return check_class_embeddings(
        embeddings,
        f'The class-embedding matrix made from {glove_path!r}',
        class_names,
        fix='Rename those classes (e.g. through a --classes file) to words '
        'with non-zero, distinct GloVe vectors.')


def _glove_lines(f, path: str):
    """The lines of a GloVe file, each of bounded length (a word and 300
    numbers take a few KB; a line padded to gigabytes is refused)."""
    # Imported here: sarb_mm.datasets imports this package.
    from sarb_mm.datasets.utils import bounded_lines
    return bounded_lines(f, path, 'GloVe file')
