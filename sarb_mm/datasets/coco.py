"""MS-COCO (COCO-format instances JSON) as a multi-label dataset."""
import contextlib
import io
import os.path as osp
from typing import Dict, List, Optional, Union

from mmpretrain.datasets import MultiLabelDataset
from mmpretrain.registry import DATASETS
from pycocotools.coco import COCO

from .utils import (check_class_names, check_file_name, load_json_file,
                    require_dir, require_file, short_repr)


@DATASETS.register_module()
class CocoMultiLabelDataset(MultiLabelDataset):
    """Multi-label view of a COCO-format instances annotation file.

    Expected layout (defaults shown)::

        data_root
        |-- annotations
        |   `-- instances_train2014.json
        `-- train2014
            |-- COCO_train2014_000000000009.jpg
            `-- ...

    The dataset order is the order of the JSON ``images`` list, and *every*
    image is kept, including those without any annotation (they have no
    positive class), because the published partial-label matrices are indexed
    in that order. Classes are the JSON ``categories`` sorted by ascending
    ``id`` and mapped to ``0..C-1``; their names come from the JSON, so any
    COCO-format file (e.g. a generated 10-category one) works. Every
    annotation of an image counts, crowd annotations included, as in the
    published code.

    Each data info holds ``img_path`` and ``gt_label`` (sorted unique class
    indices). Annotations are parsed in :meth:`load_data_list`, so with
    ``lazy_init=True`` the class names are only known after ``full_init()``.

    The file is checked before it is used, and every problem is an error
    naming the file, the entry and the fix: ids must be integers or strings
    (never booleans, floats or objects; category ids all of one type, since
    they are sorted), ``file_name`` a non-empty string that stays inside
    the image directory (no absolute path, ``..`` or URL, unless
    ``allow_outside_data_root=True``). Duplicates are errors rather than
    warnings, because neither has a right answer to guess: one file listed
    under two image ids would count twice in training and evaluation, and
    two categories with one name (also after renaming through ``classes``)
    would merge in ``class_to_idx`` and overwrite each other's per-class
    results. Annotations need only ``id``, ``image_id`` and
    ``category_id``; boxes and segmentations are not read.

    Args:
        data_root (str): Dataset root; ``ann_file`` and ``data_prefix`` are
            relative to it. Defaults to ''.
        ann_file (str): COCO instances JSON.
            Defaults to ``'annotations/instances_train2014.json'``.
        data_prefix (str | dict): Image directory, or
            ``dict(img_path=...)``. Defaults to ``'train2014'``.
        metainfo (dict, optional): Meta information; ``classes`` given here
            (or via ``classes``) rename the sorted categories and must match
            their number. Defaults to None.
        allow_outside_data_root (bool): Accept ``file_name`` values that
            leave the image directory (absolute paths, ``..``, URLs).
            Defaults to False.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ``indices``, ...).
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = 'annotations/instances_train2014.json',
                 data_prefix: Union[str, dict] = 'train2014',
                 metainfo: Optional[dict] = None,
                 allow_outside_data_root: bool = False,
                 **kwargs) -> None:
        if not isinstance(allow_outside_data_root, bool):
            raise TypeError('`allow_outside_data_root` must be True or '
                            f'False, but got {allow_outside_data_root!r}.')
        self.allow_outside_data_root = allow_outside_data_root
        if isinstance(data_prefix, dict) and 'img_path' not in data_prefix:
            raise ValueError('`data_prefix` must be a str or a dict with key '
                             f'"img_path", but got {data_prefix!r}.')
        img_dir = (
            data_prefix['img_path']
            if isinstance(data_prefix, dict) else data_prefix)
        self._layout = _coco_layout(ann_file, img_dir)
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse the instances JSON into data infos, in ``images`` order."""
        if self.data_root:
            require_dir(self.data_root, 'COCO data_root', self._layout)
        require_file(self.ann_file, 'COCO annotation file', self._layout)
        require_dir(self.img_prefix, 'COCO image directory', self._layout)

        coco = self._load_coco(self.ann_file)
        cat_ids = sorted(coco.cats)
        cat_to_label = {cat_id: i for i, cat_id in enumerate(cat_ids)}
        self._set_classes([coco.cats[i]['name'] for i in cat_ids], cat_ids)

        data_list = []
        for img in coco.dataset['images']:
            labels = {
                cat_to_label[ann['category_id']]
                for ann in coco.imgToAnns[img['id']]
            }
            data_list.append(
                dict(
                    img_path=osp.join(self.img_prefix, img['file_name']),
                    gt_label=sorted(labels)))
        return data_list

    def _load_coco(self, path: str) -> COCO:
        """Validate the JSON, then index it with pycocotools.

        pycocotools itself fails with a bare ``KeyError`` on missing fields
        and silently accepts dangling references, so the checks come first.
        """
        data = load_json_file(path)
        where = f'COCO annotation file {path!r}'
        if not isinstance(data, dict):
            raise ValueError(f'{path!r} must hold a JSON object with keys '
                             '"images", "annotations" and "categories", '
                             f'but holds a {type(data).__name__}.')
        for key in ('images', 'annotations', 'categories'):
            if not isinstance(data.get(key), list):
                problem = 'lacks' if key not in data else 'has a non-list'
                raise ValueError(
                    f'{where} {problem} key "{key}"; '
                    'expected a COCO instances file with "images", '
                    '"annotations" and "categories" lists.')
        for key in ('images', 'categories'):
            if not data[key]:
                raise ValueError(f'{where} lists no {key} ("{key}" is '
                                 'empty).')

        cat_ids = _collect_ids(path, 'categories', data['categories'],
                               ('id', 'name'))
        _check_category_ids(path, cat_ids)
        img_ids = _collect_ids(path, 'images', data['images'],
                               ('id', 'file_name'))
        files = {}
        for img_id, img in img_ids.items():
            name = check_file_name(
                img['file_name'], f'{where}: image id {img_id!r} has '
                'file_name', self.allow_outside_data_root)
            key = osp.normpath(name)
            if key in files:
                raise ValueError(
                    f'{where}: image ids {files[key]!r} and {img_id!r} both '
                    f'have file_name {name!r}; the image would count twice '
                    'in training and evaluation. Keep one of the two '
                    'entries (and move its annotations to it).')
            files[key] = img_id
        for cat_id, cat in cat_ids.items():
            if not isinstance(cat['name'], str) or not cat['name'].strip():
                raise ValueError(
                    f'{where}: category id {cat_id!r} has name '
                    f'{short_repr(cat["name"])}; expected a non-empty '
                    'string. Fix the entry.')
        for i, ann in enumerate(data['annotations']):
            _check_annotation(path, i, ann, cat_ids, img_ids)

        coco = COCO()
        coco.dataset = data
        # pycocotools prints progress on stdout; keep build logs clean.
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def _set_classes(self, names: List[str], cat_ids: list) -> None:
        """Take class names from the JSON unless the user supplied some."""
        given = self._metainfo.get('classes')
        if given is None:
            first = {}
            for cat_id, name in zip(cat_ids, names):
                if name in first:
                    raise ValueError(
                        f'COCO annotation file {self.ann_file!r}: '
                        f'categories {first[name]!r} and {cat_id!r} are both '
                        f'named {name!r}; they would merge into one class '
                        "in class_to_idx and overwrite each other's "
                        'per-class results. Rename one in the file, or give '
                        'one distinct name per category via `classes` (in '
                        'ascending category id order).')
                first[name] = cat_id
            self._metainfo['classes'] = tuple(names)
        elif len(given) != len(names):
            raise ValueError(
                f'{len(given)} class names were given in metainfo/classes, '
                f'but {self.ann_file!r} has {len(names)} categories; give '
                'one name per category (in ascending category id order) or '
                'none to use the names in the file.')
        else:
            check_class_names(given, 'The class names given in '
                              'metainfo/classes')


def _collect_ids(path: str, key: str, entries: list, required: tuple) -> Dict:
    """Check required fields, id types and uniqueness of a list."""
    ids = {}
    for i, entry in enumerate(entries):
        missing = [
            f for f in required
            if not isinstance(entry, dict) or f not in entry
        ]
        if missing:
            raise ValueError(
                f'COCO annotation file {path!r}: entry #{i} of "{key}" '
                f'({short_repr(entry)}) lacks {missing}; every entry must '
                f'be a JSON object with the keys {list(required)}.')
        _check_id(path, f'entry #{i} of "{key}" has id', entry['id'])
        if entry['id'] in ids:
            raise ValueError(
                f'COCO annotation file {path!r}: duplicate id '
                f'{entry["id"]!r} in "{key}" (entry #{i}); ids must be '
                'unique. Remove or renumber one of the entries.')
        ids[entry['id']] = entry
    return ids


def _check_id(path: str, what: str, value) -> None:
    """Ids are JSON integers or strings; ``true == 1`` and ``1.0 == 1``
    would silently match another id, and objects cannot be looked up."""
    if isinstance(value, str) or (isinstance(value, int)
                                  and not isinstance(value, bool)):
        return
    raise ValueError(
        f'COCO annotation file {path!r}: {what} {short_repr(value)} (a '
        f'{_json_type(value)}); ids must be integers (or strings). Fix the '
        'entry.')


def _check_category_ids(path: str, cat_ids: Dict) -> None:
    """Category ids are sorted into class order: one type only."""
    by_type = {}
    for cat_id in cat_ids:
        by_type.setdefault(type(cat_id), cat_id)
    if len(by_type) > 1:
        a, b = by_type.values()
        raise ValueError(
            f'COCO annotation file {path!r} mixes integer and string '
            f'category ids ({a!r} and {b!r}); classes are ordered by '
            'sorting the ids, which needs one type. Use integer ids '
            'throughout (and in the annotations\' category_id).')


def _check_annotation(path: str, i: int, ann, cat_ids: Dict,
                      img_ids: Dict) -> None:
    where = f'COCO annotation file {path!r}'
    if not isinstance(ann, dict):
        raise ValueError(f'{where}: annotation #{i} is '
                         f'{short_repr(ann)}; expected a JSON object.')
    if 'id' not in ann:
        raise ValueError(f'{where}: annotation #{i} '
                         f'({short_repr(ann)}) has no "id".')
    _check_id(path, f'annotation #{i} has id', ann['id'])
    ann_id = ann['id']
    for key in ('image_id', 'category_id'):
        if key not in ann:
            raise ValueError(f'{where}: annotation id {ann_id!r} has no '
                             f'"{key}".')
        _check_id(path, f'annotation id {ann_id!r} has {key}', ann[key])
    if ann['category_id'] not in cat_ids:
        raise ValueError(
            f'{where}: annotation id {ann_id!r} has category_id '
            f'{ann["category_id"]!r}, which is not among the categories '
            f'(ids {short_repr(sorted(cat_ids), 200)}).')
    if ann['image_id'] not in img_ids:
        raise ValueError(
            f'{where}: annotation id {ann_id!r} references image_id '
            f'{ann["image_id"]!r}, which is not in "images".')


def _json_type(value) -> str:
    names = {
        bool: 'boolean',
        float: 'number with a fraction or exponent',
        dict: 'JSON object',
        list: 'JSON list',
        type(None): 'null'
    }
    return names.get(type(value), type(value).__name__)


def _coco_layout(ann_file: str, img_dir: str) -> str:
    return (f'<data_root>/\n'
            f'|-- {ann_file}    (ann_file: COCO instances JSON)\n'
            f'`-- {img_dir.rstrip("/") or "."}/    (data_prefix: images)\n'
            f'    `-- <file_name of each "images" entry>')
