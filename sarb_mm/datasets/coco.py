"""MS-COCO (COCO-format instances JSON) as a multi-label dataset."""
import contextlib
import io
import os.path as osp
from typing import Dict, List, Optional, Union

from mmpretrain.datasets import MultiLabelDataset
from mmpretrain.registry import DATASETS
from pycocotools.coco import COCO

from .utils import load_json_file, require_dir, require_file


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
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ``indices``, ...).
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = 'annotations/instances_train2014.json',
                 data_prefix: Union[str, dict] = 'train2014',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
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
        self._set_classes([str(coco.cats[i]['name']) for i in cat_ids])

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
        if not isinstance(data, dict):
            raise ValueError(f'{path!r} must hold a JSON object with keys '
                             '"images", "annotations" and "categories", '
                             f'but holds a {type(data).__name__}.')
        for key in ('images', 'annotations', 'categories'):
            if not isinstance(data.get(key), list):
                problem = 'lacks' if key not in data else 'has a non-list'
                raise ValueError(
                    f'COCO annotation file {path!r} {problem} key "{key}"; '
                    'expected a COCO instances file with "images", '
                    '"annotations" and "categories" lists.')
        if not data['images']:
            raise ValueError(
                f'COCO annotation file {path!r} lists no images ("images" '
                'is empty).')

        cat_ids = _collect_ids(path, 'categories', data['categories'],
                               ('id', 'name'))
        img_ids = _collect_ids(path, 'images', data['images'],
                               ('id', 'file_name'))
        for ann in data['annotations']:
            ann_id = ann.get('id') if isinstance(ann, dict) else None
            if ann_id is None:
                raise ValueError(f'COCO annotation file {path!r}: annotation '
                                 f'{ann!r} has no "id".')
            for key in ('image_id', 'category_id'):
                if key not in ann:
                    raise ValueError(
                        f'COCO annotation file {path!r}: annotation id '
                        f'{ann_id} has no "{key}".')
            if ann['category_id'] not in cat_ids:
                raise ValueError(
                    f'COCO annotation file {path!r}: annotation id {ann_id} '
                    f'has category_id {ann["category_id"]!r}, which is not '
                    f'among the categories (ids {sorted(cat_ids)}).')
            if ann['image_id'] not in img_ids:
                raise ValueError(
                    f'COCO annotation file {path!r}: annotation id {ann_id} '
                    f'references image_id {ann["image_id"]!r}, which is not '
                    'in "images".')

        coco = COCO()
        coco.dataset = data
        # pycocotools prints progress on stdout; keep build logs clean.
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def _set_classes(self, names: List[str]) -> None:
        """Take class names from the JSON unless the user supplied some."""
        given = self._metainfo.get('classes')
        if given is None:
            self._metainfo['classes'] = tuple(names)
        elif len(given) != len(names):
            raise ValueError(
                f'{len(given)} class names were given in metainfo/classes, '
                f'but {self.ann_file!r} has {len(names)} categories; give '
                'one name per category (in ascending category id order) or '
                'none to use the names in the file.')


def _collect_ids(path: str, key: str, entries: list,
                 required: tuple) -> Dict:
    """Check required fields and id uniqueness of ``images``/``categories``."""
    ids = {}
    for entry in entries:
        missing = [f for f in required
                   if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise ValueError(f'COCO annotation file {path!r}: entry {entry!r} '
                             f'of "{key}" lacks {missing}.')
        if entry['id'] in ids:
            raise ValueError(f'COCO annotation file {path!r}: duplicate id '
                             f'{entry["id"]!r} in "{key}".')
        ids[entry['id']] = entry
    return ids


def _coco_layout(ann_file: str, img_dir: str) -> str:
    return (f'<data_root>/\n'
            f'|-- {ann_file}    (ann_file: COCO instances JSON)\n'
            f'`-- {img_dir.rstrip("/") or "."}/    (data_prefix: images)\n'
            f'    `-- <file_name of each "images" entry>')
