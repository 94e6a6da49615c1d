"""Known labels and image names without a dense image-by-class matrix.

A natively partial dataset knows a few labels per image out of hundreds of
classes (OpenImages: about 6 of 600). Stored densely that is ``N x C``
bytes (5.4 GB at 9 M x 600, on every rank); stored as compressed sparse
rows it is 3 bytes per known label. Everything the training needs from the
labels (co-occurrence, per-class counts, the fingerprint of the split) is
computed from the rows here, equal to what the dense matrix gives.
"""
import hashlib
from array import array
from typing import Iterable, Sequence, Tuple, Union

import numpy as np

# Rows turned dense at a time where a computation needs dense rows.
_CHUNK_ROWS = 8192


def class_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned dtype that holds a class index."""
    return np.dtype(np.uint16 if num_classes <= 2**16 else np.uint32)


def subset_positions(indices: Union[int, Sequence[int]],
                     length: int) -> np.ndarray:
    """The positions that mmengine's ``indices`` argument selects.

    An int ``n >= 0`` keeps the first ``n`` items, a negative one the last
    ``-n``; a sequence keeps those positions, in its order.
    """
    if isinstance(indices, (int, np.integer)):
        indices = int(indices)
        if indices >= 0:
            return np.arange(min(indices, length))
        return np.arange(max(length + indices, 0), length)
    positions = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(positions) and (positions.min() < -length
                           or positions.max() >= length):
        raise IndexError(f'subset indices out of range for {length} items')
    return positions % max(length, 1)


class SparseLabels:
    """-1 / 0 / 1 labels of ``N`` images over ``C`` classes, known ones only.

    Image ``i`` has the known labels ``classes[indptr[i]:indptr[i + 1]]``
    (ascending) with values (1 positive, -1 negative) at the same positions
    of ``values``; every other entry is unknown (0).

    Args:
        indptr (np.ndarray): int64 ``(N + 1,)`` row starts.
        classes (np.ndarray): Class indices, ``(nnz,)``.
        values (np.ndarray): int8 ``(nnz,)`` in {-1, 1}.
        num_classes (int): ``C``.
    """

    def __init__(self, indptr: np.ndarray, classes: np.ndarray,
                 values: np.ndarray, num_classes: int) -> None:
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.classes = np.asarray(classes, dtype=class_dtype(num_classes))
        self.values = np.asarray(values, dtype=np.int8)
        self.num_classes = int(num_classes)

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> 'SparseLabels':
        """The rows of a dense ``(N, C)`` -1/0/1 matrix."""
        matrix = np.asarray(matrix)
        rows, classes = np.nonzero(matrix)
        indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=matrix.shape[0]), out=indptr[1:])
        return cls(indptr, classes, np.sign(matrix[rows, classes]),
                   matrix.shape[1])

    @classmethod
    def concatenate(cls, parts: Sequence['SparseLabels'],
                    num_classes: int) -> 'SparseLabels':
        """The rows of ``parts``, one after the other."""
        indptr, total = [np.zeros(1, dtype=np.int64)], 0
        for part in parts:
            indptr.append(part.indptr[1:] + total)
            total += part.known_count()
        return cls(
            np.concatenate(indptr),
            np.concatenate([p.classes for p in parts] +
                           [np.zeros(0, class_dtype(num_classes))]),
            np.concatenate([p.values for p in parts] + [np.zeros(0, np.int8)]),
            num_classes)

    @property
    def shape(self) -> Tuple[int, int]:
        return len(self.indptr) - 1, self.num_classes

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.classes.nbytes + self.values.nbytes

    def row(self, idx: int) -> Tuple[np.ndarray, np.ndarray]:
        """Classes and values of the known labels of image ``idx``."""
        start, stop = self.indptr[idx], self.indptr[idx + 1]
        return self.classes[start:stop], self.values[start:stop]

    def subset(self, positions: np.ndarray) -> 'SparseLabels':
        """The rows at ``positions``, in that order."""
        positions = np.asarray(positions, dtype=np.int64)
        starts, stops = self.indptr[positions], self.indptr[positions + 1]
        lengths = stops - starts
        indptr = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # The position of every kept label in the old arrays.
        take = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return SparseLabels(indptr, self.classes[take], self.values[take],
                            self.num_classes)

    def to_dense(self, start: int = 0, stop: int = None) -> np.ndarray:
        """Rows ``start:stop`` as a dense int8 matrix (all rows by default;
        meant for small datasets and chunks)."""
        stop = len(self) if stop is None else stop
        lo, hi = self.indptr[start], self.indptr[stop]
        dense = np.zeros((stop - start, self.num_classes), dtype=np.int8)
        rows = np.repeat(
            np.arange(stop - start), np.diff(self.indptr[start:stop + 1]))
        dense[rows, self.classes[lo:hi]] = self.values[lo:hi]
        return dense

    def dense_chunks(self) -> Iterable[np.ndarray]:
        """The dense rows, a bounded number at a time."""
        for start in range(0, len(self), _CHUNK_ROWS):
            yield self.to_dense(start, min(start + _CHUNK_ROWS, len(self)))

    def positive_counts(self) -> np.ndarray:
        """int64 ``(C,)``: known positives per class."""
        return np.bincount(
            self.classes[self.values > 0], minlength=self.num_classes)

    def negative_counts(self) -> np.ndarray:
        """int64 ``(C,)``: known negatives per class."""
        return np.bincount(
            self.classes[self.values < 0], minlength=self.num_classes)

    def images_with_positive(self) -> int:
        """How many images have at least one known positive."""
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        return len(np.unique(rows[self.values > 0]))

    def known_count(self) -> int:
        return len(self.values)

    def positive_pair_counts(self) -> np.ndarray:
        """int64 ``(C, C)``: images where both classes are known positive
        (the diagonal: known positives per class), i.e. ``P.T @ P`` of the
        binary positive matrix ``P``, from the rows' pairs."""
        keep = self.values > 0
        classes = self.classes[keep].astype(np.int64)
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))[keep]
        per_row = np.bincount(rows, minlength=len(self))
        counts = np.zeros(self.num_classes**2, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(per_row)[:-1]])
        # Rows with k positives give k * k pairs; handled k at a time so
        # that each step is one vectorised bincount.
        for k in np.unique(per_row[per_row > 0]):
            firsts = starts[per_row == k]
            for lo in range(0, len(firsts), _CHUNK_ROWS * 64):
                block = classes[firsts[lo:lo + _CHUNK_ROWS * 64, None] +
                                np.arange(k)]
                pairs = block[:, :, None] * self.num_classes + \
                    block[:, None, :]
                counts += np.bincount(
                    pairs.reshape(-1), minlength=self.num_classes**2)
        return counts.reshape(self.num_classes, self.num_classes)

    def fingerprint(self) -> str:
        """SHA-256 of the dense matrix (shape and values), computed a chunk
        of rows at a time: equal to ``split_fingerprint`` of ``to_dense()``.
        """
        digest = hashlib.sha256(repr(self.shape).encode())
        for chunk in self.dense_chunks():
            digest.update(chunk.tobytes())
        return digest.hexdigest()


class ImageLabels:
    """Image file names and their known labels, in a few numpy arrays.

    About 20 bytes of name, 16 bytes of offsets and 3 bytes per known label
    per image, and no Python object per image: DataLoader workers share the
    arrays with the main process without copy-on-write growth.

    Args:
        names (np.ndarray): uint8, the UTF-8 names one after the other.
        name_ends (np.ndarray): int64 ``(N,)``, where each name ends.
        labels (SparseLabels): The known labels, one row per image.
    """

    def __init__(self, names: np.ndarray, name_ends: np.ndarray,
                 labels: SparseLabels) -> None:
        self.names = names
        self.name_ends = name_ends
        self.labels = labels

    @classmethod
    def from_names(cls, names: Sequence[str],
                   labels: SparseLabels) -> 'ImageLabels':
        """Pack a list of names (one per row of ``labels``)."""
        joined = ''.join(names)
        blob = joined.encode('utf-8')
        if len(blob) == len(joined):  # ASCII: a character is a byte
            lengths = np.fromiter(map(len, names), np.int64, len(names))
        else:
            lengths = np.fromiter((len(n.encode('utf-8')) for n in names),
                                  np.int64, len(names))
        del joined
        return cls(
            np.frombuffer(blob, dtype=np.uint8), np.cumsum(lengths), labels)

    def __len__(self) -> int:
        return len(self.name_ends)

    @property
    def nbytes(self) -> int:
        return self.names.nbytes + self.name_ends.nbytes + self.labels.nbytes

    def name(self, idx: int) -> str:
        start = self.name_ends[idx - 1] if idx > 0 else 0
        return self.names[start:self.name_ends[idx]].tobytes().decode('utf-8')

    def __getitem__(self, idx: int) -> Tuple[str, np.ndarray, np.ndarray]:
        """Name, known positive classes and known negative classes."""
        classes, values = self.labels.row(idx)
        return self.name(idx), classes[values > 0], classes[values < 0]

    def subset(self, positions: np.ndarray) -> 'ImageLabels':
        positions = np.asarray(positions, dtype=np.int64)
        starts = np.concatenate([[0], self.name_ends])[positions]
        lengths = self.name_ends[positions] - starts
        ends = np.cumsum(lengths)
        take = np.repeat(starts - (ends - lengths),
                         lengths) + np.arange(ends[-1] if len(ends) else 0)
        return ImageLabels(self.names[take], ends,
                           self.labels.subset(positions))


class ImageLabelsBuilder:
    """Collects images one at a time into :class:`ImageLabels`, in growing
    arrays (no Python object kept per image).

    Args:
        num_classes (int): ``C``.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self._names = bytearray()
        self._name_ends = array('q')
        self._indptr = array('q', [0])
        self._classes = array('H' if num_classes <= 2**16 else 'I')
        self._values = array('b')

    def __len__(self) -> int:
        return len(self._name_ends)

    def append(self, name: str, positives: Iterable[int],
               negatives: Iterable[int]) -> None:
        """Add an image; ``positives`` and ``negatives`` must not overlap."""
        known = sorted([(int(c), 1) for c in positives] + [(int(c), -1)
                                                           for c in negatives])
        self._names += name.encode('utf-8')
        self._name_ends.append(len(self._names))
        self._classes.extend(c for c, _ in known)
        self._values.extend(v for _, v in known)
        self._indptr.append(len(self._classes))

    def build(self) -> ImageLabels:
        """The collected images (the builder is emptied)."""

        def take(buffer, dtype):
            return np.frombuffer(buffer, dtype=dtype).copy()

        labels = SparseLabels(
            take(self._indptr, np.int64),
            take(self._classes, class_dtype(self.num_classes)),
            take(self._values, np.int8), self.num_classes)
        images = ImageLabels(
            take(self._names, np.uint8), take(self._name_ends, np.int64),
            labels)
        self.__init__(self.num_classes)
        return images
