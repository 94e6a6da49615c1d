"""Reconstruct the VG-200 category names from Visual Genome's objects.json.

The VG-200 release (train / test lists and a label file mapping each image
to class indices 0..199) has no name list. The names are needed for the
word vectors of the semantic decoupling neck and for readable per-class
results. This module rebuilds a list from Visual Genome's raw object
annotations:

1. Every object name is normalised (:func:`normalize_name`), optionally
   mapped through Visual Genome's ``object_alias.txt``.
2. Names are ranked by how many images they occur in (or how many objects
   carry them), most frequent first; equal counts are ordered by the name
   itself (Unicode code points), so the ranking is deterministic.
3. The top C names are the reconstruction, C being the label file's class
   count. When the label file is given, the names are also put into its
   class-index order: each class index gets the name whose set of images
   agrees best with that index's set of images (Jaccard index, greedy
   matching from the best pair down), and the agreement of every index is
   reported.

The result is a reconstruction: the authors' own list is not published, so
it cannot be compared with it. A high agreement between a name's images and
its index's images is strong evidence, a low one marks an index whose name
is a guess.
"""
import os.path as osp
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from sarb_mm.utils.errors import InvalidInputError, MissingInputFileError
from .json_stream import JsonStream, JsonStreamError
from .utils import bounded_lines, load_json_file, short_repr

_SPACES = re.compile(r'\s+')
COUNT_MODES = ('images', 'objects')


def normalize_name(name) -> str:
    """Lower-case, strip, and collapse inner whitespace to one space.

    ``'  Street  Sign '`` becomes ``'street sign'``; anything that is not a
    string becomes ``''`` (and is skipped by the caller).
    """
    if not isinstance(name, str):
        return ''
    return _SPACES.sub(' ', name.strip().lower())


def iter_json_array(path: str,
                    progress: Optional[Callable[[int], None]] = None,
                    chunk_bytes: Optional[int] = None,
                    max_element_chars: Optional[int] = None) -> Iterator:
    """Yield the elements of a file holding one JSON array, one by one.

    Only the elements of one read are in memory (plus the read buffer), so
    a 400 MB ``objects.json`` never becomes one Python object of several
    GB. The elements are decoded by the standard library's C decoder (see
    :class:`~.json_stream.JsonStream`); an element cut by the end of a read
    is decoded again after reading at least as much again, so the work
    stays linear in its length.

    Args:
        path (str): The JSON file (UTF-8, a byte order mark is accepted).
        progress (callable, optional): Called with the number of bytes
            read after every read.
        chunk_bytes (int, optional): Bytes per read. Defaults to
            :data:`~.json_stream.CHUNK_BYTES` (4 MiB).
        max_element_chars (int, optional): The longest element, in
            characters. Defaults to
            :data:`~.json_stream.MAX_ELEMENT_CHARS` (64 Mi).

    Raises:
        InvalidInputError: If the file is not a JSON array, an element is
            not valid JSON or longer than ``max_element_chars`` (the message
            gives the line and column).
    """
    with open(path, 'rb') as f:
        stream = JsonStream(
            f, chunk_bytes, max_element_chars, progress=progress)

        def fail(what: str, line: int, col: int) -> None:
            raise InvalidInputError(
                f'{path!r} is not a JSON list of images: {what} at line '
                f'{line}, column {col}. The file may be truncated or not '
                "Visual Genome's objects.json.")

        try:
            if stream.peek() != '[':
                fail('it does not start with "["', *stream.location())
            yield from stream.elements()
            if stream.peek():
                fail('unexpected text after the closing "]"',
                     *stream.location())
        except JsonStreamError as err:
            if err.kind == 'encoding':
                raise InvalidInputError(
                    f'{path!r} is not UTF-8 text ({err.msg} at byte '
                    f'{err.offset}, line {err.lineno}); expected '
                    "Visual Genome's objects.json.") from None
            if err.kind == 'too_long':
                raise InvalidInputError(
                    f'{path!r}: {err.too_long_text()}, or pass a larger '
                    'max_element_chars.') from None
            what = err.msg
            if err.context == 'array':
                what = ('the file ends inside the list'
                        if err.at_eof else 'expected "," or "]"')
            fail(what, err.lineno, err.colno)
        except RecursionError:
            raise InvalidInputError(
                f'{path!r}: the element starting on line '
                f'{stream.location()[0]} is nested too deeply to be an image '
                "entry of Visual Genome's objects.json.") from None


def read_aliases(path: str) -> Dict[str, str]:
    """Read Visual Genome's ``object_alias.txt`` (``name,alias,alias...``).

    Returns:
        dict: Normalised alias -> normalised canonical name.
    """
    if not osp.isfile(path):
        raise MissingInputFileError(
            f'Alias file {path!r} does not exist; it is object_alias.txt '
            'of the Visual Genome download (lines "name,alias,...").')
    aliases = {}
    with open(path, encoding='utf-8') as f:
        for line in bounded_lines(f, path, 'Alias file'):
            names = [normalize_name(n) for n in line.split(',')]
            names = [n for n in names if n]
            for alias in names[1:]:
                aliases[alias] = names[0]
    return aliases


@dataclass
class ObjectNameCounts:
    """What one pass over objects.json collects.

    Attributes:
        num_images (int): Image entries read.
        num_objects (int): Object entries read.
        image_counts (Counter): Normalised name -> number of images.
        object_counts (Counter): Normalised name -> number of objects.
        image_names (dict): Image id -> tuple of its distinct names, kept
            only for the images asked for (those of the label file).
    """
    num_images: int = 0
    num_objects: int = 0
    image_counts: Counter = field(default_factory=Counter)
    object_counts: Counter = field(default_factory=Counter)
    image_names: Dict[int, Tuple[str, ...]] = field(default_factory=dict)


def count_object_names(
        path: str,
        aliases: Optional[Dict[str, str]] = None,
        keep_images: Optional[set] = None,
        progress: Optional[Callable[[int], None]] = None) -> ObjectNameCounts:
    """Count the normalised object names of Visual Genome's objects.json.

    Each image entry needs an id (``image_id``, or ``id``) and an
    ``objects`` list; each object a ``names`` list (``name`` in old
    releases). An object with several names counts once for each distinct
    name.

    Args:
        path (str): objects.json.
        aliases (dict, optional): Alias -> canonical name (normalised).
        keep_images (set, optional): Image ids whose name sets are kept in
            ``image_names``.
        progress (callable, optional): See :func:`iter_json_array`.

    Returns:
        ObjectNameCounts: The counts.
    """
    if not osp.isfile(path):
        raise MissingInputFileError(
            f'objects file {path!r} does not exist; it is objects.json from '
            "Visual Genome's download page (objects.json.zip, unzipped).")
    aliases = aliases or {}
    keep_images = keep_images or set()
    counts = ObjectNameCounts()
    # Raw name -> canonical name: the same few thousand strings recur
    # millions of times.
    canonical: Dict[str, str] = {}
    for index, entry in enumerate(iter_json_array(path, progress)):
        image_id, objects = _image_entry(path, index, entry)
        seen = set()
        for number, obj in enumerate(objects):
            names = _object_names(path, image_id, number, obj)
            distinct = set()
            for raw in names:
                name = canonical.get(raw) if isinstance(raw, str) else None
                if name is None:
                    name = normalize_name(raw)
                    name = aliases.get(name, name)
                    if isinstance(raw, str):
                        canonical[raw] = name
                if name:
                    distinct.add(name)
            counts.object_counts.update(distinct)
            seen |= distinct
        counts.num_images += 1
        counts.num_objects += len(objects)
        counts.image_counts.update(seen)
        if image_id in keep_images:
            counts.image_names[image_id] = tuple(sorted(seen))
    if counts.num_images == 0:
        raise InvalidInputError(f'{path!r} lists no images.')
    return counts


def _image_entry(path: str, index: int, entry) -> Tuple[int, list]:
    if isinstance(entry, dict):
        image_id = entry.get('image_id', entry.get('id'))
        objects = entry.get('objects')
        if (isinstance(image_id, int) and not isinstance(image_id, bool)
                and isinstance(objects, list)):
            return image_id, objects
    raise InvalidInputError(
        f'{path!r}: entry #{index} ({short_repr(entry)}) is not an image '
        'entry of objects.json; expected an object with an integer '
        '"image_id" and an "objects" list.')


def _object_names(path: str, image_id: int, number: int, obj) -> list:
    if isinstance(obj, dict):
        names = obj.get('names')
        if isinstance(names, list):
            return names
        if isinstance(obj.get('name'), str):
            return [obj['name']]
    raise InvalidInputError(
        f'{path!r}: object #{number} of image {image_id} '
        f'({short_repr(obj)}) has neither a "names" list nor a "name"; '
        "expected Visual Genome's objects.json.")


def rank_names(counts: Counter, num: int) -> List[str]:
    """The ``num`` most frequent names, ties in code-point order.

    Args:
        counts (Counter): Name -> count.
        num (int): How many names to return.

    Raises:
        InvalidInputError: If there are fewer than ``num`` distinct names.
    """
    if len(counts) < num:
        raise InvalidInputError(
            f'The objects file has only {len(counts)} distinct object names, '
            f'fewer than the {num} classes asked for.')
    return sorted(counts, key=lambda name: (-counts[name], name))[:num]


def read_label_file(path: str, num_classes: int) -> Dict[int, List[int]]:
    """Read a VG label file and check its class count.

    The file maps image file names (``<image id>.jpg``) to class indices,
    the format :class:`~sarb_mm.datasets.VG200MultiLabelDataset` reads.

    Args:
        path (str): ``vg_category_200_labels_index.json``.
        num_classes (int): The class count the indices must fill.

    Returns:
        dict: Image id -> sorted distinct class indices, for the entries
        whose file name is ``<integer>.<ext>``.

    Raises:
        InvalidInputError: If the file is not such a mapping, an index is
            outside ``0..num_classes-1`` or the largest index is not
            ``num_classes - 1``.
    """
    if not osp.isfile(path):
        raise MissingInputFileError(
            f'Label file {path!r} does not exist; it is '
            'vg_category_200_labels_index.json of the VG-200 release.')
    try:
        data = load_json_file(path)
    except ValueError as err:
        raise InvalidInputError(str(err)) from None
    if not isinstance(data, dict) or not data:
        raise InvalidInputError(
            f'Label file {path!r} must hold a non-empty JSON object mapping '
            'image file names to lists of class indices.')
    labels, largest = {}, -1
    for name, indices in data.items():
        if not isinstance(indices, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0
                for i in indices):
            raise InvalidInputError(
                f'Label file {path!r}: image {name!r} maps to '
                f'{short_repr(indices)}; expected a list of class indices.')
        largest = max([largest] + indices)
        stem = osp.splitext(osp.basename(name))[0]
        if stem.isdigit():
            labels[int(stem)] = sorted(set(indices))
    if largest + 1 != num_classes:
        raise InvalidInputError(
            f'Label file {path!r} has class indices 0..{largest} '
            f'({largest + 1} classes), but {num_classes} names are asked '
            f'for. Pass --num-classes {largest + 1} if that is intended.')
    return labels


@dataclass
class NameMatch:
    """How well one class index and its name agree on the label file's
    images (those also found in objects.json).

    Attributes:
        index (int): Class index.
        name (str): The name given to it.
        index_images (int): Images with this index in the label file.
        name_images (int): Images whose objects carry the name.
        both (int): Images with both.
    """
    index: int
    name: str
    index_images: int
    name_images: int
    both: int

    @property
    def jaccard(self) -> float:
        union = self.index_images + self.name_images - self.both
        return self.both / union if union else 0.0


def match_names_to_indices(names: Sequence[str], labels: Dict[int, List[int]],
                           image_names: Dict[int, Tuple[str, ...]],
                           num_classes: int) -> List[NameMatch]:
    """Give each class index the name whose images agree best with it.

    Over the images present in both files, the Jaccard index of every
    (class index, name) pair is computed; pairs are then taken from the
    highest Jaccard down (ties: lower index, then earlier name), each index
    and each name used once.

    Args:
        names (Sequence[str]): Candidate names (at least ``num_classes``).
        labels (dict): Image id -> class indices (:func:`read_label_file`).
        image_names (dict): Image id -> its names
            (:attr:`ObjectNameCounts.image_names`).
        num_classes (int): Number of class indices.

    Returns:
        list[NameMatch]: One entry per class index, in index order.
    """
    images = sorted(set(labels) & set(image_names))
    column = {name: j for j, name in enumerate(names)}
    index_matrix = np.zeros((len(images), num_classes), dtype=np.float32)
    name_matrix = np.zeros((len(images), len(names)), dtype=np.float32)
    for row, image in enumerate(images):
        index_matrix[row, labels[image]] = 1
        cols = [column[n] for n in image_names[image] if n in column]
        name_matrix[row, cols] = 1
    # Counts below 2**24 are exact in float32.
    both = (index_matrix.T @ name_matrix).astype(np.int64)
    index_sizes = index_matrix.sum(0).astype(np.int64)
    name_sizes = name_matrix.sum(0).astype(np.int64)
    union = index_sizes[:, None] + name_sizes[None, :] - both
    jaccard = np.divide(both, union, out=np.zeros(both.shape), where=union > 0)
    # Stable sort on -jaccard keeps (index, name) order among ties.
    order = np.argsort(-jaccard, axis=None, kind='stable')
    taken_index = np.zeros(num_classes, dtype=bool)
    taken_name = np.zeros(len(names), dtype=bool)
    matches: List[Optional[NameMatch]] = [None] * num_classes
    for flat in order:
        i, j = divmod(int(flat), len(names))
        if taken_index[i] or taken_name[j]:
            continue
        taken_index[i] = taken_name[j] = True
        matches[i] = NameMatch(i, names[j], int(index_sizes[i]),
                               int(name_sizes[j]), int(both[i, j]))
        if taken_index.all():
            break
    return matches


@dataclass
class VGNames:
    """A reconstructed VG name list.

    Attributes:
        names (list[str]): One name per class, in class-index order when
            ``matches`` is set, else in frequency order.
        ranked (list[str]): The same names by frequency.
        counts (ObjectNameCounts): The counts they come from.
        count_mode (str): ``'images'`` or ``'objects'``.
        matches (list[NameMatch], optional): Agreement per class index
            (label file given).
        label_images (int): Images in the label file.
        shared_images (int): Of those, images found in objects.json.
    """
    names: List[str]
    ranked: List[str]
    counts: ObjectNameCounts
    count_mode: str
    matches: Optional[List[NameMatch]] = None
    label_images: int = 0
    shared_images: int = 0

    def frequency(self, name: str) -> int:
        counter = (
            self.counts.image_counts
            if self.count_mode == 'images' else self.counts.object_counts)
        return counter[name]


def reconstruct_vg_names(
        objects_file: str,
        label_file: Optional[str] = None,
        num_classes: int = 200,
        count: str = 'images',
        alias_file: Optional[str] = None,
        progress: Optional[Callable[[int], None]] = None) -> VGNames:
    """Rebuild the VG-200 names (see the module docstring).

    Args:
        objects_file (str): Visual Genome's objects.json.
        label_file (str, optional): The release's label file; checks the
            class count and orders the names by class index.
        num_classes (int): Number of names. Defaults to 200.
        count (str): Rank by ``'images'`` (images in which a name occurs,
            default) or ``'objects'`` (objects carrying it).
        alias_file (str, optional): Visual Genome's object_alias.txt.
        progress (callable, optional): Called with bytes read.

    Returns:
        VGNames: The names and the evidence for them.
    """
    if count not in COUNT_MODES:
        raise InvalidInputError(
            f'count must be one of {COUNT_MODES}, got {count!r}.')
    if (isinstance(num_classes, bool) or not isinstance(num_classes, int)
            or num_classes < 1):
        raise InvalidInputError(
            f'num_classes must be an integer >= 1, got {num_classes!r}.')
    labels = (
        read_label_file(label_file, num_classes)
        if label_file is not None else None)
    if labels is not None and not labels:
        raise InvalidInputError(
            f'Label file {label_file!r} names no image as <image id>.jpg, '
            'so its images cannot be found in objects.json.')
    aliases = read_aliases(alias_file) if alias_file else None
    counts = count_object_names(objects_file, aliases, set(labels or ()),
                                progress)
    counter = (
        counts.image_counts if count == 'images' else counts.object_counts)
    ranked = rank_names(counter, num_classes)
    result = VGNames(list(ranked), ranked, counts, count)
    if labels is not None:
        result.label_images = len(labels)
        result.shared_images = len(counts.image_names)
        if result.shared_images == 0:
            raise InvalidInputError(
                f'None of the {len(labels)} images of {label_file!r} is in '
                f'{objects_file!r} (image ids taken from the file names '
                '<image id>.jpg); are both from Visual Genome?')
        result.matches = match_names_to_indices(ranked, labels,
                                                counts.image_names,
                                                num_classes)
        result.names = [m.name for m in result.matches]
    return result
