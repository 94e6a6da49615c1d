"""OpenImages human-verified image-level labels as a partial-label dataset."""
import contextlib
import csv
import itertools
import os.path as osp
import re
from array import array
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from sarb_mm.utils.errors import InvalidInputError
from . import utils
from .json_stream import Utf8Error, Utf8Reader
from .native_partial import (Entry, NativePartialDataset, describe_classes,
                             read_class_file)
from .sparse_labels import ImageLabels, SparseLabels
from .utils import line_too_long, require_file, short_repr

LABEL_HEADER = ('ImageID', 'Source', 'LabelName', 'Confidence')
CLASS_HEADER = ('LabelName', 'DisplayName')
# The Source values of human-verified labels. OpenImages also ships
# 'machine' rows (a classifier's confidence, e.g. 0.7, or rounded to 0/1):
# those are predictions, not verified labels.
HUMAN_VERIFIED_SOURCES = ('verification', 'crowdsource-verification')
# Bytes decoded per block of CSV lines.
_CSV_BLOCK = 64 * 1024
# A CSV line: what a text file opened with newline='' gives as a line.
_CSV_LINE = re.compile(r'[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+')


class OpenImagesLabels(NamedTuple):
    """The known labels of an OpenImages label file, image by image.

    Image ``i`` has the known labels ``classes[indptr[i]:indptr[i + 1]]``
    with the values (1 positive, -1 negative) at the same positions of
    ``values`` (compressed sparse rows, classes ascending within an image).
    """

    image_ids: List[str]  # in order of first appearance in the label file
    label_names: List[str]  # the kept classes' LabelName (MID), class order
    class_names: List[str]  # their DisplayName, made unique
    indptr: np.ndarray  # int64 (num_images + 1,)
    classes: np.ndarray  # int32 (num_known,)
    values: np.ndarray  # int8 (num_known,)
    skipped_rows: int = 0  # rows of a Source that was not accepted

    def to_matrix(self) -> np.ndarray:
        """The dense (num_images, num_classes) int8 matrix of 1/-1/0."""
        matrix = np.zeros((len(self.image_ids), len(self.label_names)),
                          dtype=np.int8)
        rows = np.repeat(np.arange(len(self.image_ids)), np.diff(self.indptr))
        matrix[rows, self.classes] = self.values
        return matrix


def read_class_descriptions(path: str) -> Tuple[List[str], List[str]]:
    """Read an OpenImages class-description CSV (``LabelName,DisplayName``).

    The real file has no header row (some releases add one); a first row
    ``LabelName,DisplayName`` is skipped.

    Args:
        path (str): The CSV file.

    Returns:
        tuple[list[str], list[str]]: LabelNames (MIDs) and DisplayNames, in
        file order.
    """
    mids, names, first = [], [], {}
    what = 'OpenImages class-description file'
    with _open_csv(path) as f:
        reader = csv.reader(_csv_lines(f, path, what))
        with _csv_errors(reader, path, what):
            for row in reader:
                if not row:
                    continue
                lineno = reader.line_num
                if lineno == 1 and tuple(c.strip()
                                         for c in row) == CLASS_HEADER:
                    continue
                where = (f'OpenImages class-description file {path!r}, line '
                         f'{lineno}')
                if len(row) != 2:
                    raise InvalidInputError(
                        f'{where} has {len(row)} fields; expected two, '
                        'LabelName,DisplayName (e.g. /m/01yrx,Cat). Is this '
                        'the class-description file?')
                mid, name = row[0].strip(), row[1].strip()
                if not mid:
                    raise InvalidInputError(f'{where}: the field LabelName is '
                                            'empty.')
                if mid in first:
                    raise InvalidInputError(
                        f'{where} lists the LabelName {mid!r} again (first '
                        f'on line {first[mid]}); every class must be listed '
                        'once. Remove one of the lines.')
                first[mid] = lineno
                mids.append(mid)
                names.append(name or mid)
    if not mids:
        raise InvalidInputError(
            f'OpenImages class-description file {path!r} lists no class; '
            'expected rows LabelName,DisplayName (e.g. /m/01yrx,Cat).')
    return mids, names


def resolve_class_subset(subset: Union[str, Sequence[str]], mids: List[str],
                         names: List[str], class_file: str) -> List[int]:
    """Indices (into the description file) of the classes to keep.

    Args:
        subset (str | Sequence[str]): Class names, or the path of a file
            with one per line. Each is a LabelName (``/m/01yrx``) or a
            DisplayName (``Cat``) that names a single class.
        mids (list[str]): LabelNames of the description file.
        names (list[str]): Their DisplayNames.
        class_file (str): The description file, for messages.

    Returns:
        list[int]: Indices in the order of ``subset``.
    """
    if isinstance(subset, str):
        entries = read_class_file(subset, 'OpenImages class_subset file')
        source = f'class_subset file {subset!r}'
    elif isinstance(subset, Sequence) and subset and all(
            isinstance(s, str) for s in subset):
        entries = list(subset)
        source = 'class_subset'
    else:
        raise InvalidInputError(
            'OpenImages class_subset must be a non-empty list of class '
            'names or the path of a file with one class per line, but got '
            f'{short_repr(subset)}.')
    by_mid = {mid: i for i, mid in enumerate(mids)}
    by_name = {}
    for i, name in enumerate(names):
        by_name.setdefault(name, []).append(i)
    kept, first = [], {}
    for entry in entries:
        entry = entry.strip()
        if entry in by_mid:
            idx = by_mid[entry]
        elif len(by_name.get(entry, ())) == 1:
            idx = by_name[entry][0]
        elif entry in by_name:
            raise InvalidInputError(
                f'The {source} entry {entry!r} is the DisplayName of '
                f'several classes ({[mids[i] for i in by_name[entry]]}) in '
                f'{class_file!r}; give the LabelName of the one you mean.')
        else:
            raise InvalidInputError(
                f'The {source} entry {entry!r} is neither a LabelName nor '
                f'a DisplayName in the class-description file '
                f'{class_file!r}. Correct the name; LabelNames look like '
                "'/m/01yrx', DisplayNames like 'Cat'.")
        if idx in first:
            raise InvalidInputError(
                f'The {source} entries {first[idx]!r} and {entry!r} both '
                f'name the class {mids[idx]} ({names[idx]!r}); list it once.')
        first[idx] = entry
        kept.append(idx)
    return kept


def parse_openimages_labels(
    label_file: str,
    class_file: str,
    class_subset: Optional[Union[str, Sequence[str]]] = None,
    sources: Optional[Sequence[str]] = HUMAN_VERIFIED_SOURCES
) -> OpenImagesLabels:
    """Stream an OpenImages image-level label CSV into sparse known labels.

    The label file has a header naming at least the columns ``ImageID``,
    ``LabelName`` and ``Confidence`` (the real one is
    ``ImageID,Source,LabelName,Confidence``). It is read row by row with the
    :mod:`csv` module; only the rows of kept classes are stored, as one
    8-byte integer each (image, class and value packed), sorted in place,
    so memory grows with the kept labels plus one dictionary entry per
    image, never with the file. The lines of a contradiction are found by
    a second pass, only when there is one.

    Confidence 1 is a verified positive, 0 a verified negative; a class
    without a row is unknown. Rows of classes outside ``class_subset`` are
    skipped; images without any kept row are not listed. The same label
    given twice with one value (e.g. by two sources) counts once. Only the
    rows whose ``Source`` is in ``sources`` count (by default the
    human-verified ones); the others, e.g. ``machine`` predictions, are
    skipped as if absent.

    Args:
        label_file (str): The image-level label CSV.
        class_file (str): The class-description CSV.
        class_subset (str | Sequence[str], optional): Classes to keep, in
            this order (see :func:`resolve_class_subset`). Defaults to None:
            every class of ``class_file``, in its order.
        sources (Sequence[str], optional): The accepted ``Source`` values.
            Defaults to :data:`HUMAN_VERIFIED_SOURCES`. None accepts every
            row (and a file without a Source column).

    Returns:
        OpenImagesLabels: The known labels.

    Raises:
        InvalidInputError: Naming the file, line and field, for a missing
            header, a row with the wrong number of fields, an empty
            ImageID, a LabelName absent from ``class_file`` (unknown class),
            a Confidence other than 0 / 1, and an image with both
            Confidence 1 and 0 for one class (contradictory labels).
    """
    mids, names = read_class_descriptions(class_file)
    kept = (
        list(range(len(mids))) if class_subset is None else
        resolve_class_subset(class_subset, mids, names, class_file))
    # -1: a known class that is not kept (its rows are skipped).
    column = dict.fromkeys(mids, -1)
    for col, idx in enumerate(kept):
        column[mids[idx]] = col
    num_classes = len(kept)

    images = {}
    # One int64 per kept row: (image * C + class) * 2 + positive. Sorting
    # these groups the rows of each image and class, and the low bit tells
    # a positive (1) from a negative (0).
    keys = array('q')
    what = 'OpenImages label file'
    with _open_csv(label_file) as f:
        reader = csv.reader(_csv_lines(f, label_file, what))
        with _csv_errors(reader, label_file, what):
            header = next(reader, None)
            i_img, i_label, i_conf = _header_columns(header, label_file)
            i_src = _source_column(header, label_file, sources)
            accepted = None if sources is None else frozenset(sources)
            skipped = 0
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row:
                        continue
                    raise InvalidInputError(
                        f'{what} {label_file!r}, line {reader.line_num} has '
                        f'{len(row)} fields, but the header has {width}; the '
                        'file may be truncated or corrupt.')
                label = row[i_label]
                col = column.get(label)
                if col is None:
                    raise InvalidInputError(
                        f'{what} {label_file!r}, line {reader.line_num}, '
                        f'field LabelName: the class {label!r} is not in the '
                        f'class-description file {class_file!r}. Use the '
                        'class descriptions of the same OpenImages release '
                        'as the labels.')
                if col < 0:
                    continue
                if accepted is not None and row[i_src] not in accepted:
                    skipped += 1
                    continue
                confidence = row[i_conf]
                if confidence == '1':
                    positive = 1
                elif confidence == '0':
                    positive = 0
                else:
                    positive = _confidence(confidence, label_file,
                                           reader.line_num)
                image_id = row[i_img]
                img = images.get(image_id)
                if img is None:
                    _check_image_id(image_id, label_file, reader.line_num)
                    img = images[image_id] = len(images)
                keys.append((img * num_classes + col) * 2 + positive)
    image_ids = list(images)
    del images
    if not image_ids:
        raise InvalidInputError(
            f'{what} {label_file!r} has no row of the '
            f'{"kept " if class_subset is not None else ""}classes '
            f'({describe_classes([names[i] for i in kept])}), so there is no '
            'image to use. Check the file and class_subset.')
    indptr, classes, values, clash = _compress(keys, len(image_ids),
                                               num_classes)
    del keys
    if clash is not None:
        img, col = clash
        _report_conflict(label_file, (i_img, i_label, i_conf, i_src), accepted,
                         image_ids[img], mids[kept[col]], names[kept[col]])
    return OpenImagesLabels(
        image_ids=image_ids,
        label_names=[mids[i] for i in kept],
        class_names=_unique_names([names[i] for i in kept],
                                  [mids[i] for i in kept]),
        indptr=indptr,
        classes=classes,
        values=values,
        skipped_rows=skipped)


def _compress(keys: array, num_images: int, num_classes: int):
    """Sort the packed rows in place, drop repeats, and return compressed
    sparse rows, plus the (image, class) of the first contradiction (or
    None)."""
    key = np.frombuffer(keys, dtype=np.int64)  # a view: sorted in place
    key.sort()
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    if not new.all():  # the same label given again, by any source
        key = key[new]
    del new
    pair = key >> 1
    clash = np.flatnonzero(pair[1:] == pair[:-1])
    if len(clash):
        return None, None, None, divmod(int(pair[clash[0]]), num_classes)
    indptr = np.zeros(num_images + 1, dtype=np.int64)
    np.cumsum(
        np.bincount(pair // num_classes, minlength=num_images), out=indptr[1:])
    np.remainder(pair, num_classes, out=pair)
    classes = pair.astype(np.int32)
    del pair
    # The low bit as 1 / -1, through int8 (the cast keeps the low byte).
    values = key.astype(np.int8)
    values &= 1
    values *= 2
    values -= 1
    return indptr, classes, values, None


def _report_conflict(path: str, columns: Tuple[int, int, int, int],
                     accepted: Optional[frozenset], image_id: str, mid: str,
                     name: str) -> None:
    """Find the first row of each value of a contradictory label (a second
    pass over the file, only on this error) and raise."""
    i_img, i_label, i_conf, i_src = columns
    first, count = {}, 0
    with _open_csv(path) as f:
        reader = csv.reader(_csv_lines(f, path, 'OpenImages label file'))
        next(reader)
        for row in reader:
            if (len(row) > max(i_img, i_label, i_conf, i_src)
                    and row[i_img] == image_id and row[i_label] == mid
                    and (accepted is None or row[i_src] in accepted)):
                value = _confidence(row[i_conf], path, reader.line_num)
                first.setdefault(value, reader.line_num)
                count += 1
    raise InvalidInputError(
        f'OpenImages label file {path!r}: the image {image_id!r} has '
        f'contradictory labels for the class {mid} ({name!r}), Confidence 1 '
        f'on line {first.get(1)} and 0 on line {first.get(0)} (field '
        f'Confidence; {count} rows of this label in all). An image cannot be '
        'verified both to have and to lack a class: remove the wrong row '
        '(or both, to leave the class unknown).')


def _open_csv(path: str):
    # Binary: _csv_lines decodes and splits the lines itself, to bound
    # their length and to name the byte and line of invalid UTF-8.
    return open(path, 'rb')


def _csv_lines(f, path: str, what: str) -> Iterator[str]:
    """The lines of a CSV file opened in binary mode, for ``csv.reader``,
    with bounded memory.

    ``csv.reader(f)`` reads each physical line whole, however long. Here
    the file is decoded in blocks and split into lines (at ``\\n``,
    ``\\r\\n`` and ``\\r``, as a text file opened with ``newline=''``
    does), and a line longer than ``utils.MAX_LINE_LENGTH`` characters is
    refused, naming it, before more of it is read. A row may also span
    lines inside a quoted field: the csv module caps each field
    (``csv.field_size_limit``), but not a row of many short quoted fields
    with line breaks, so the lines under one open quote are capped
    together. Lines are handed over a block at a time (a chain of lists),
    so the row loop runs at the speed of reading the file directly.
    """
    return itertools.chain.from_iterable(_csv_blocks(f, path, what))


def _csv_blocks(f, path: str, what: str) -> Iterator[List[str]]:
    limit = utils.MAX_LINE_LENGTH
    reader = Utf8Reader(f)
    tail = ''  # the unfinished last line of the blocks read so far
    done = opened = span = 0  # lines handed over; the open quote's lines
    while True:
        # Read at least as much as the unfinished line: it is split again
        # with each block, and this keeps the work linear in its length.
        try:
            text = tail + reader.read(max(_CSV_BLOCK, len(tail)))
        except Utf8Error as err:
            # The line of the bad byte: after the complete lines before it.
            pieces = (tail + err.text).splitlines(True)
            if pieces and not pieces[-1].endswith(('\n', '\r')):
                pieces.pop()
            line = done + len(pieces) + 1
            raise InvalidInputError(
                f'{what} {path!r} is not UTF-8 text (byte {err.offset} is '
                f'{err.byte!r}), on line {line}; re-save it as UTF-8.'
            ) from None
        if reader.eof:
            lines, tail = [text] if text else [], ''
        else:
            lines = (
                _CSV_LINE.findall(text)
                if _has_other_breaks(text) else text.splitlines(True))
            tail = lines.pop() if lines else ''
        if lines and max(map(len, lines)) > limit:
            first = next(i for i, line in enumerate(lines)
                         if len(line) > limit)
            raise line_too_long(path, what, done + first + 1, limit, False)
        if len(tail) > limit:
            raise line_too_long(path, what, done + len(lines) + 1, limit,
                                False)
        if opened or '"' in text:
            # A quote is open after a line with an odd number of '"' (a
            # quote doubled inside a quoted field counts two).
            for i, line in enumerate(lines, done + 1):
                if opened:
                    span += len(line)
                    if span > limit:
                        raise _quote_too_long(path, what, opened, i, span,
                                              limit)
                    if line.count('"') % 2:
                        opened = 0
                elif '"' in line and line.count('"') % 2:
                    opened, span = i, len(line)
        done += len(lines)
        if lines:
            yield lines
        if reader.eof:
            return


def _has_other_breaks(text: str) -> bool:
    """Whether ``text`` has a line break of ``str.splitlines`` that ends no
    CSV line (``\\v``, ``\\f``, ...; a few ``in`` tests, far faster than
    a regular expression)."""
    return (any(c in text for c in '\x0b\x0c\x1c\x1d\x1e')
            or (not text.isascii() and any(c in text
                                           for c in '\x85\u2028\u2029')))


def _quote_too_long(path: str, what: str, opened: int, lineno: int, span: int,
                    limit: int) -> InvalidInputError:
    return InvalidInputError(
        f'{what} {path!r}, lines {opened}-{lineno}: the quoted field opened '
        f'on line {opened} is still open after {span:,} characters, more '
        f'than the limit of one row ({limit:,}). Its closing quote is '
        'probably missing (a quote inside a field is written twice, ""). If '
        'the row is genuine, set sarb_mm.datasets.utils.MAX_LINE_LENGTH to '
        'a larger value before building the dataset.')


@contextlib.contextmanager
def _csv_errors(reader, path: str, what: str):
    """Turn CSV errors of ``reader`` into errors naming the line (a
    wrapper around the loop, not around each row: the rows of a large file
    are read at full speed). :func:`_csv_lines` words its own errors."""
    try:
        yield
    except csv.Error as e:
        raise InvalidInputError(f'{what} {path!r}, line {reader.line_num}: '
                                f'not valid CSV ({e}).') from None


def _header_columns(header, path: str) -> Tuple[int, int, int]:
    fields = [c.strip() for c in header or ()]
    missing = [
        c for c in ('ImageID', 'LabelName', 'Confidence') if c not in fields
    ]
    if missing:
        first = 'empty' if header is None else short_repr(','.join(header))
        raise InvalidInputError(
            f'OpenImages label file {path!r} has no header with the columns '
            f'ImageID, LabelName and Confidence (line 1 is {first}; missing '
            f'{missing}). The expected first line is '
            f'{",".join(LABEL_HEADER)!r}; add it if the file lacks it.')
    return (fields.index('ImageID'), fields.index('LabelName'),
            fields.index('Confidence'))


def _source_column(header, path: str, sources) -> int:
    """The index of the Source column (-1 when every source counts)."""
    if sources is None:
        return -1
    if isinstance(sources,
                  str) or not all(isinstance(x, str)
                                  for x in sources) or not sources:
        raise InvalidInputError(
            f'OpenImages sources must be a list of Source values such as '
            f'{list(HUMAN_VERIFIED_SOURCES)}, or None for every row; got '
            f'{sources!r}.')
    fields = [c.strip() for c in header]
    if 'Source' not in fields:
        raise InvalidInputError(
            f'OpenImages label file {path!r} has no Source column, so the '
            f'human-verified rows ({", ".join(sources)}) cannot be told '
            'from machine predictions. Add the column, or set sources=None '
            'in the dataset config if every row is a verified label.')
    return fields.index('Source')


def _confidence(text: str, path: str, lineno: int) -> int:
    try:
        number = float(text)
    except ValueError:
        number = None
    if number == 1.0:
        return 1
    if number == 0.0:
        return 0
    raise InvalidInputError(
        f'OpenImages label file {path!r}, line {lineno}, field Confidence: '
        f'{short_repr(text)} is not 0 or 1. Human-verified image-level '
        'labels have Confidence 1 (present) or 0 (absent); the '
        'machine-generated label files (fractional confidences) are not '
        'verified labels: use the human-verified file.')


def _check_image_id(image_id: str, path: str, lineno: int) -> None:
    bad = (not image_id.strip() or image_id in ('.', '..')
           or any(c in image_id for c in '/\\\x00'))
    if bad:
        raise InvalidInputError(
            f'OpenImages label file {path!r}, line {lineno}, field ImageID: '
            f'{short_repr(image_id)} is not an image id; ids are file names '
            'without extension (e.g. 000002b66c9c498e), with no path '
            'separator.')


def _unique_names(names: List[str], mids: List[str]) -> List[str]:
    """DisplayNames, with the LabelName added to those used twice."""
    counts = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return [
        f'{name} ({mid})' if counts[name] > 1 else name
        for name, mid in zip(names, mids)
    ]


@DATASETS.register_module()
class OpenImagesPartialDataset(NativePartialDataset):
    """OpenImages human-verified image-level labels, partially known.

    Expected layout (defaults shown; the file names of the release you
    downloaded go to ``ann_file`` and ``class_file``)::

        data_root
        |-- annotations
        |   |-- oidv6-train-annotations-human-imagelabels.csv
        |   `-- oidv6-class-descriptions.csv
        `-- train
            |-- 000002b66c9c498e.jpg
            `-- ...

    Rows ``ImageID,Source,LabelName,Confidence``: Confidence 1 is a verified
    positive, 0 a verified negative, and a class without a row for an image
    is unknown. Only human-verified rows count (``sources``). The classes
    are those of the class-description file (rows
    ``LabelName,DisplayName``, with or without a header), or
    ``class_subset``, in its order; class names are the DisplayNames (with
    the LabelName added where two kept classes share one). The dataset
    order is the order in which images first appear in the label file;
    images with no row of a kept class are not listed.

    The label file is streamed (see :func:`parse_openimages_labels`), and
    every problem is an error naming the file, line and field: unknown
    class, contradictory labels for one image (also from different rows
    or sources), a Confidence other than 0 / 1, and a missing image file
    (see ``missing_images``; ``'skip'`` suits a partial download).

    See :class:`NativePartialDataset` for what each sample holds.

    Args:
        data_root (str): Dataset root. Defaults to ''.
        ann_file (str): The image-level label CSV. Defaults to
            ``'annotations/oidv6-train-annotations-human-imagelabels.csv'``.
        class_file (str): The class-description CSV. Defaults to
            ``'annotations/oidv6-class-descriptions.csv'``.
        data_prefix (str | dict): Image directory. Defaults to 'train'.
        class_subset (str | Sequence[str], optional): Classes to keep: a
            list of LabelNames or DisplayNames, or the path of a file with
            one per line (relative to ``data_root``). Defaults to None
            (every class of ``class_file``).
        img_suffix (str): Appended to the ImageID to get the file name.
            Defaults to '.jpg'.
        metainfo (dict, optional): ``classes`` here rename the kept classes.
            Defaults to None.
        missing_images (str): ``'error'``, ``'skip'`` or ``'unchecked'``,
            see :class:`NativePartialDataset`. Defaults to 'error'.
        sources (Sequence[str], optional): ``Source`` values whose rows
            count. Defaults to ``('verification',
            'crowdsource-verification')``, the human-verified labels;
            ``machine`` rows (classifier predictions) are skipped. None
            accepts every row.
        **kwargs: Other arguments of :class:`NativePartialDataset` and
            :class:`mmpretrain.datasets.BaseDataset`.
    """

    format_name = 'OpenImages'
    # One entry per ImageID, each checked by the parser, with a checked
    # suffix: no per-image name checks needed.
    names_are_checked = True

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = ('annotations/'
                                  'oidv6-train-annotations-human-imagelabels'
                                  '.csv'),
                 class_file: str = 'annotations/oidv6-class-descriptions.csv',
                 data_prefix: Union[str, dict] = 'train',
                 class_subset: Optional[Union[str, Sequence[str]]] = None,
                 img_suffix: str = '.jpg',
                 metainfo: Optional[dict] = None,
                 missing_images: str = 'error',
                 sources: Optional[Sequence[str]] = HUMAN_VERIFIED_SOURCES,
                 **kwargs) -> None:
        self.class_file = _under(data_root, class_file, 'class_file')
        # A str is kept as is, for parse_openimages_labels to refuse.
        self.sources = (
            tuple(sources) if isinstance(sources, (list, tuple)) else sources)
        self.class_subset = (
            _under(data_root, class_subset, 'class_subset') if isinstance(
                class_subset, str) else class_subset)
        if not isinstance(img_suffix, str) or any(c in img_suffix
                                                  for c in '/\\\x00'):
            raise InvalidInputError(
                'OpenImagesPartialDataset: img_suffix must be a file name '
                f"ending such as '.jpg', but got {img_suffix!r}.")
        self.img_suffix = img_suffix
        img_dir = (
            data_prefix.get('img_path', '')
            if isinstance(data_prefix, dict) else data_prefix)
        self._layout = (
            f'<data_root>/\n'
            f'|-- {ann_file}    (ann_file: ImageID,Source,LabelName,'
            'Confidence)\n'
            f'|-- {class_file}    (class_file: LabelName,DisplayName)\n'
            f'`-- {img_dir.rstrip("/") or "."}/<ImageID>{img_suffix}    '
            '(data_prefix: images)')
        self.label_names: List[str] = []
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            metainfo=metainfo,
            missing_images=missing_images,
            **kwargs)

    def read_annotations(self) -> Tuple[List[str], Iterator[Entry]]:
        """Parse the label CSV; stream one entry per image."""
        labels = self._parse()
        return labels.class_names, self._entries(labels)

    def load_annotations(self) -> ImageLabels:
        """Parse the label CSV straight into packed sparse rows (no
        Python object per image is built after the parse)."""
        self._require_dirs()
        labels = self._parse()
        self._set_classes(labels.class_names)
        image_ids = labels.image_ids
        sparse = SparseLabels(labels.indptr, labels.classes, labels.values,
                              len(labels.label_names))
        del labels
        missing = []
        if self._check_files():
            where = f'OpenImages label file {self.ann_file!r}, ImageID '
            kept = np.fromiter(
                (self._image_exists(i + self.img_suffix, where + repr(i))
                 for i in image_ids), bool, len(image_ids))
            if not kept.all():
                missing = [
                    osp.join(self.img_prefix, image_ids[i] + self.img_suffix)
                    for i in np.flatnonzero(~kept)
                ]
                image_ids = [i for i, k in zip(image_ids, kept) if k]
                sparse = sparse.subset(np.flatnonzero(kept))
        if self.img_suffix:
            image_ids = [i + self.img_suffix for i in image_ids]
        return self._finish(ImageLabels.from_names(image_ids, sparse), missing)

    def _parse(self) -> OpenImagesLabels:
        require_file(self.ann_file, 'OpenImages label file', self._layout)
        require_file(self.class_file, 'OpenImages class-description file',
                     self._layout)
        if isinstance(self.class_subset, str):
            require_file(self.class_subset, 'OpenImages class_subset file',
                         self._layout)
        labels = parse_openimages_labels(self.ann_file, self.class_file,
                                         self.class_subset, self.sources)
        if labels.skipped_rows:
            print_log(
                f'OpenImages label file {self.ann_file}: skipped '
                f'{labels.skipped_rows} rows whose Source is not in '
                f'{list(self.sources)} (e.g. machine predictions).',
                logger='current')
        self.label_names = labels.label_names
        return labels

    def _entries(self, labels: OpenImagesLabels) -> Iterator[Entry]:
        where = f'OpenImages label file {self.ann_file!r}, ImageID '
        for i, image_id in enumerate(labels.image_ids):
            classes = labels.classes[labels.indptr[i]:labels.indptr[i + 1]]
            values = labels.values[labels.indptr[i]:labels.indptr[i + 1]]
            yield (image_id + self.img_suffix, classes[values > 0].tolist(),
                   classes[values < 0].tolist(), where + repr(image_id))

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return super().extra_repr() + [
            f'Class-description file: \t{self.class_file}',
            f'Class subset: \t{describe_classes(self.label_names)}'
            if self.class_subset is not None else 'Class subset: \tall'
        ]


def _under(data_root: str, path, name: str) -> str:
    if not isinstance(path, str) or not path:
        raise InvalidInputError(
            f'OpenImagesPartialDataset: {name} must be a file path, but got '
            f'{path!r}.')
    return (osp.join(data_root, path)
            if data_root and not osp.isabs(path) else path)
