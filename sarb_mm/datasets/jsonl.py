"""A JSON Lines format for a user's own partially labelled images."""
import json
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
from mmpretrain.registry import DATASETS

from sarb_mm.utils.errors import InvalidInputError
from .native_partial import (Entry, NativePartialDataset, class_index,
                             describe_classes, read_class_file)
from .partial_labels import validate_known_ratio, validate_seed
from .synthetic import claim_demo_root, make_demo_dataset
from .utils import (_DuplicateKey, _unique_keys, bounded_lines, load_json_file,
                    require_file, short_repr)

FIELDS = ('img', 'pos', 'neg')
#: The longest line (record) of a JSON Lines file, in bytes, the default of
#: ``max_record_bytes``. A record names one image and its classes, a few
#: hundred bytes even with thousands of classes; a longer line is refused
#: after reading this much of it, so that a line padded to gigabytes never
#: is read into memory.
MAX_RECORD_BYTES = 16 * 1024**2
EXAMPLE_LINE = '{"img": "images/0001.jpg", "pos": ["cat"], "neg": ["dog"]}'


@DATASETS.register_module()
class JsonLinesPartialDataset(NativePartialDataset):
    """Partially labelled images listed one per line in a JSON Lines file.

    Expected layout (defaults shown)::

        data_root
        |-- classes.txt     one class name per line
        |-- train.jsonl     one JSON object per line
        `-- images/...      (paths in "img" are relative to data_prefix)

    Each non-blank line describes one image::

        {"img": "images/0001.jpg", "pos": ["cat"], "neg": ["car", "dog"]}

    ``pos`` lists the classes verified present, ``neg`` those verified
    absent; both are optional, and every class in neither is unknown. The
    classes are those of ``class_file``, in its line order. The dataset
    order is the line order.

    Every problem is an error naming the file, the line and the field: a
    line that is not a JSON object, a missing or empty ``"img"``, an image
    listed on two lines, an image file that does not exist (see
    ``missing_images``), a class that is not in ``class_file``, a class in
    both ``pos`` and ``neg``, and any other key (a misspelt ``"negs"``
    would otherwise leave the negatives unknown without a word).

    See :class:`NativePartialDataset` for what each sample holds.

    Args:
        data_root (str): Dataset root; the other paths are relative to it.
            Defaults to ''.
        ann_file (str): The JSON Lines file. Defaults to 'train.jsonl'.
        class_file (str): The class names, one per line. Defaults to
            'classes.txt'.
        data_prefix (str | dict): Directory the ``"img"`` paths are relative
            to, or ``dict(img_path=...)``. Defaults to '' (``data_root``).
        metainfo (dict, optional): ``classes`` here rename the classes of
            ``class_file`` (same number, same order). Defaults to None.
        missing_images (str): ``'error'``, ``'skip'`` or ``'unchecked'``,
            see :class:`NativePartialDataset`. Defaults to 'error'.
        allow_outside_data_root (bool): Accept ``"img"`` paths that leave
            the image directory. Defaults to False.
        max_record_bytes (int): The longest line of ``ann_file``, in bytes;
            a longer one is an error naming the line. Defaults to
            :data:`MAX_RECORD_BYTES` (16 MiB).
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ...).
    """

    format_name = 'JSON Lines'

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = 'train.jsonl',
                 class_file: str = 'classes.txt',
                 data_prefix: Union[str, dict] = '',
                 metainfo: Optional[dict] = None,
                 missing_images: str = 'error',
                 allow_outside_data_root: bool = False,
                 max_record_bytes: int = MAX_RECORD_BYTES,
                 **kwargs) -> None:
        if (not isinstance(max_record_bytes, int)
                or isinstance(max_record_bytes, bool) or max_record_bytes < 1):
            raise InvalidInputError(
                'JsonLinesPartialDataset: max_record_bytes must be a positive '
                f'number of bytes, but got {max_record_bytes!r}.')
        self.max_record_bytes = max_record_bytes
        if not isinstance(class_file, str) or not class_file:
            raise InvalidInputError(
                'JsonLinesPartialDataset: class_file must be the path of the '
                f'class-name file, but got {class_file!r}.')
        self.class_file = (
            osp.join(data_root, class_file)
            if data_root and not osp.isabs(class_file) else class_file)
        img_dir = (
            data_prefix.get('img_path', '')
            if isinstance(data_prefix, dict) else data_prefix)
        self._layout = (f'<data_root>/\n'
                        f'|-- {class_file}    (class_file: one class name '
                        'per line)\n'
                        f'|-- {ann_file}    (ann_file: one JSON object per '
                        f'line, e.g. {EXAMPLE_LINE})\n'
                        f'`-- {img_dir.rstrip("/") or "."}/    '
                        '(data_prefix: the "img" paths are relative to it)')
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            metainfo=metainfo,
            missing_images=missing_images,
            allow_outside_data_root=allow_outside_data_root,
            **kwargs)

    def read_annotations(self) -> Tuple[List[str], Iterator[Entry]]:
        """Read ``class_file`` and stream the lines of ``ann_file``."""
        require_file(self.class_file, 'Class file', self._layout)
        require_file(self.ann_file, 'JSON Lines annotation file', self._layout)
        names = read_class_file(self.class_file, 'Class file')
        return names, self._entries(names)

    def _entries(self, names: List[str]) -> Iterator[Entry]:
        index = class_index(names)
        num_lines = 0
        with open(self.ann_file, 'rb') as f:
            # Read with a bounded readline: iterating over the file would
            # read a line padded to gigabytes whole.
            lines = bounded_lines(
                f,
                self.ann_file,
                'JSON Lines file',
                self.max_record_bytes,
                how_to_raise='set max_record_bytes to a larger number of '
                'bytes in the dataset config')
            for lineno, raw in enumerate(lines, 1):
                where = f'JSON Lines file {self.ann_file!r}, line {lineno}'
                record = _decode_line(raw, lineno, where)
                if record is None:
                    continue
                num_lines += 1
                yield self._parse_record(record, index, where)
        if not num_lines:
            raise InvalidInputError(
                f'JSON Lines file {self.ann_file!r} lists no image; expected '
                f'one JSON object per line, e.g. {EXAMPLE_LINE}')

    def _parse_record(self, record: dict, index: dict, where: str) -> Entry:
        unknown_keys = [key for key in record if key not in FIELDS]
        if unknown_keys:
            raise InvalidInputError(
                f'{where} has the field(s) {unknown_keys}; the allowed fields '
                f'are "img", "pos" and "neg". Rename or remove the others '
                '(a misspelt "pos" or "neg" would leave those labels '
                'unknown).')
        if 'img' not in record:
            raise InvalidInputError(
                f'{where}: the field "img" (the image path) is missing; '
                f'every line names its image, e.g. {EXAMPLE_LINE}')
        img = record['img']
        if not isinstance(img, str) or not img.strip():
            raise InvalidInputError(
                f'{where}: the field "img" is {short_repr(img)}; expected '
                'a non-empty string, the image path relative to the image '
                'directory.')
        lists = {}
        for field in ('pos', 'neg'):
            value = record.get(field, [])
            if not isinstance(value, list) or not all(
                    isinstance(v, str) for v in value):
                raise InvalidInputError(
                    f'{where}: the field "{field}" is {short_repr(value)}; '
                    'expected a list of class names (strings), e.g. '
                    '["cat", "dog"], or [] for none.')
            for name in value:
                if name not in index:
                    raise InvalidInputError(
                        f'{where}, field "{field}": the class {name!r} is '
                        f'not in the class file {self.class_file!r} '
                        f'({describe_classes(list(index))}). Correct the '
                        'name or add the class to the class file.')
            lists[field] = {index[name] for name in value}
        both = lists['pos'] & lists['neg']
        if both:
            names = list(index)
            raise InvalidInputError(
                f'{where}: the class {names[min(both)]!r} is in both "pos" '
                'and "neg" (contradictory labels); an image cannot be '
                'verified both to have and to lack a class. Keep it in one '
                'list, or in neither to leave it unknown.')
        return img, lists['pos'], lists['neg'], where

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return super().extra_repr() + [f'Class file: \t{self.class_file}']


def _decode_line(raw: bytes, lineno: int, where: str) -> Optional[dict]:
    """One JSON Lines record, or None for a blank line."""
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f'{where} is not UTF-8 text (byte {e.start} of the line is '
            f'{raw[e.start:e.start + 1]!r}); re-save the file as UTF-8.'
        ) from None
    if lineno == 1:
        text = text.lstrip('\ufeff')
    if not text.strip():
        return None
    try:
        record = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise InvalidInputError(
            f'{where} has the field {short_repr(e.args[0])} twice; only one '
            'value could be kept. Merge them into one.') from None
    except json.JSONDecodeError as e:
        raise InvalidInputError(
            f'{where} is not valid JSON ({e.msg} at column {e.colno}); '
            f'each line must be one JSON object, e.g. {EXAMPLE_LINE}'
        ) from None
    except RecursionError:
        raise InvalidInputError(f'{where} is nested too deeply to be a '
                                'label record.') from None
    if not isinstance(record, dict):
        raise InvalidInputError(
            f'{where} holds a JSON {type(record).__name__}, not an object; '
            f'each line must be one JSON object, e.g. {EXAMPLE_LINE}')
    return record


def make_jsonl_demo(root: str,
                    known_ratio: float = 0.3,
                    val_known_ratio: float = 1.0,
                    num_train: int = 2000,
                    num_val: int = 500,
                    image_size: int = 64,
                    seed: int = 0) -> dict:
    """Write the generated demo dataset in the JSON Lines partial format.

    The demo images (:func:`~sarb_mm.datasets.make_demo_dataset`) are
    generated under ``root`` first unless they are there already. Then
    ``root/classes.txt``, ``root/train.jsonl`` and ``root/val.jsonl`` are
    written: each image is verified for a random subset of the classes,
    each class independently with probability ``known_ratio``
    (``val_known_ratio`` for the validation split) and at least one class
    per image; the verified classes go to ``"pos"`` or ``"neg"`` by the
    demo's full labels, the others are left out (unknown). The result is a
    pure function of the arguments.

    Use it with ``JsonLinesPartialDataset(data_root=root,
    ann_file='train.jsonl')`` (the ``"img"`` paths are relative to
    ``root``).

    Args:
        root (str): The demo dataset directory. As for
            :func:`make_demo_dataset`, only a new or empty directory or one
            the demo generator made is written to.
        known_ratio (float): Probability that a training image is verified
            for a class, in (0, 1]. Defaults to 0.3.
        val_known_ratio (float): The same for the validation images.
            Defaults to 1.0 (complete labels).
        num_train (int): Training images, if they are generated. Defaults
            to 2000.
        num_val (int): Validation images, if they are generated. Defaults
            to 500.
        image_size (int): Image side, if they are generated. Defaults to 64.
        seed (int): Seed of the images and of the verified subsets.
            Defaults to 0.

    Returns:
        dict: ``root``, ``class_file``, ``ann_files`` (split -> path) and
        ``known_ratio`` (split -> realised proportion of known labels).
    """
    ratios = {
        'train': validate_known_ratio(known_ratio),
        'val': validate_known_ratio(val_known_ratio)
    }
    seed = validate_seed(seed, 'make_jsonl_demo seed')
    claim_demo_root(root)
    coco_files = {
        split: osp.join(root, 'annotations', f'instances_{split}.json')
        for split in ratios
    }
    if not all(osp.isfile(path) for path in coco_files.values()):
        make_demo_dataset(
            root,
            num_train=num_train,
            num_val=num_val,
            image_size=image_size,
            seed=seed)
    info = dict(
        root=root,
        class_file=osp.join(root, 'classes.txt'),
        ann_files={},
        known_ratio={})
    names = None
    for split_idx, (split, ratio) in enumerate(ratios.items()):
        coco = load_json_file(coco_files[split])
        cat_ids = sorted(cat['id'] for cat in coco['categories'])
        by_id = {cat['id']: cat['name'] for cat in coco['categories']}
        names = [by_id[i] for i in cat_ids]
        column = {cat_id: i for i, cat_id in enumerate(cat_ids)}
        row = {img['id']: i for i, img in enumerate(coco['images'])}
        full = -np.ones((len(row), len(names)), dtype=np.int8)
        for ann in coco['annotations']:
            full[row[ann['image_id']], column[ann['category_id']]] = 1
        rng = np.random.default_rng([seed, split_idx])
        verified = rng.random(full.shape) < ratio
        # Every image is verified for at least one class.
        none = np.flatnonzero(~verified.any(axis=1))
        verified[none, rng.integers(len(names), size=len(none))] = True
        lines = []
        for img, labels, known in zip(coco['images'], full, verified):
            lines.append(
                json.dumps(
                    dict(
                        img=f'{split}/{img["file_name"]}',
                        pos=[
                            names[c]
                            for c in np.flatnonzero(known & (labels > 0))
                        ],
                        neg=[
                            names[c]
                            for c in np.flatnonzero(known & (labels < 0))
                        ])))
        path = osp.join(root, f'{split}.jsonl')
        _atomic_write_text('\n'.join(lines) + '\n', path)
        info['ann_files'][split] = path
        info['known_ratio'][split] = float(verified.mean())
    _atomic_write_text('\n'.join(names) + '\n', info['class_file'])
    return info


def _atomic_write_text(text: str, path: str) -> None:
    """Write via a temp file + rename so a reader never sees half."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)
