"""LVIS-style JSON (``neg_category_ids``) as a partial-label dataset."""
from typing import Iterator, List, Optional, Tuple, Union

from mmpretrain.registry import DATASETS

from sarb_mm.utils.errors import InvalidInputError
from .coco import _check_annotation, _check_category_ids, _collect_ids
from .native_partial import Entry, NativePartialDataset
from .utils import load_json_file, require_file, short_repr


@DATASETS.register_module()
class LVISPartialDataset(NativePartialDataset):
    """LVIS (or any COCO-style JSON with ``neg_category_ids``), partially
    known.

    Expected layout (defaults shown: LVIS v1 over the COCO 2017 images)::

        data_root
        |-- annotations
        |   `-- lvis_v1_train.json
        |-- train2017
        |   `-- 000000000009.jpg ...
        `-- val2017
            `-- ...

    Per image, a class is

    - a known positive if the image has an annotation of it (a category in
      ``not_exhaustive_category_ids`` without an annotation on the image
      stays unknown, as the official LVIS evaluation counts only annotated
      categories as present);
    - a known negative if the image lists it in ``neg_category_ids``
      (verified absent);
    - unknown otherwise.

    Classes are the ``categories`` sorted by ``id``. The dataset order is
    the ``images`` order. An image's file is its ``file_name`` (LVIS v0.5)
    or, as in the LVIS API, the last two parts of its ``coco_url``
    (``train2017/000000000009.jpg``, LVIS v1), relative to ``data_prefix``.

    Problems are errors naming the file, the image id and the field: an
    image without ``neg_category_ids`` (not an LVIS-style file), a category
    id that is not among the ``categories`` (unknown class), a class both
    positive and negative on one image (contradictory labels), two images
    with one id or one file (duplicate image) and a missing image file
    (see ``missing_images``). The COCO structure checks of
    :class:`CocoMultiLabelDataset` apply too.

    See :class:`NativePartialDataset` for what each sample holds.

    Args:
        data_root (str): Dataset root. Defaults to ''.
        ann_file (str): The LVIS JSON. Defaults to
            'annotations/lvis_v1_train.json'.
        data_prefix (str | dict): Directory the image files are relative
            to. Defaults to '' (``data_root``).
        metainfo (dict, optional): ``classes`` here rename the categories
            (ascending id order). Defaults to None.
        missing_images (str): ``'error'``, ``'skip'`` or ``'unchecked'``,
            see :class:`NativePartialDataset`. Defaults to 'error'.
        **kwargs: Other arguments of :class:`NativePartialDataset` and
            :class:`mmpretrain.datasets.BaseDataset`.
    """

    format_name = 'LVIS'

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = 'annotations/lvis_v1_train.json',
                 data_prefix: Union[str, dict] = '',
                 metainfo: Optional[dict] = None,
                 missing_images: str = 'error',
                 **kwargs) -> None:
        img_dir = (
            data_prefix.get('img_path', '')
            if isinstance(data_prefix, dict) else data_prefix)
        self._layout = (f'<data_root>/\n'
                        f'|-- {ann_file}    (ann_file: LVIS JSON)\n'
                        f'`-- {img_dir.rstrip("/") or "."}/    (data_prefix)'
                        '\n    `-- <file_name, or the last two parts of '
                        'coco_url, of each image>')
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            metainfo=metainfo,
            missing_images=missing_images,
            **kwargs)

    def read_annotations(self) -> Tuple[List[str], Iterator[Entry]]:
        """Validate the JSON and list each image's known labels."""
        require_file(self.ann_file, 'LVIS annotation file', self._layout)
        path = self.ann_file
        data = load_json_file(path)
        where = f'LVIS annotation file {path!r}'
        if not isinstance(data, dict):
            raise InvalidInputError(
                f'{where} must hold a JSON object with the keys "images", '
                f'"annotations" and "categories", but holds a '
                f'{type(data).__name__}.')
        for key in ('images', 'annotations', 'categories'):
            if not isinstance(data.get(key), list):
                problem = 'lacks' if key not in data else 'has a non-list'
                raise InvalidInputError(
                    f'{where} {problem} key "{key}"; expected an LVIS-style '
                    'file with "images", "annotations" and "categories" '
                    'lists.')
            if key != 'annotations' and not data[key]:
                raise InvalidInputError(f'{where} lists no {key} ("{key}" '
                                        'is empty).')
        cats = _collect_ids(path, 'categories', data['categories'],
                            ('id', 'name'))
        _check_category_ids(path, cats)
        cat_ids = sorted(cats)
        column = {cat_id: i for i, cat_id in enumerate(cat_ids)}
        names = []
        for cat_id in cat_ids:
            name = cats[cat_id]['name']
            if not isinstance(name, str) or not name.strip():
                raise InvalidInputError(
                    f'{where}: category id {cat_id!r} has name '
                    f'{short_repr(name)}; expected a non-empty string.')
            names.append(name)
        images = _collect_ids(path, 'images', data['images'], ('id', ))

        positives = {img_id: {} for img_id in images}
        for i, ann in enumerate(data['annotations']):
            _check_annotation(path, i, ann, cats, images)
            positives[ann['image_id']].setdefault(
                column[ann['category_id']], f'annotation id {ann["id"]!r}')
        return names, self._entries(images, positives, column, names)

    def _entries(self, images: dict, positives: dict, column: dict,
                 names: List[str]) -> Iterator[Entry]:
        path = self.ann_file
        for img_id, img in images.items():
            where = f'LVIS annotation file {path!r}, image id {img_id!r}'
            if 'neg_category_ids' not in img:
                raise InvalidInputError(
                    f'{where} has no "neg_category_ids"; this is not an '
                    'LVIS-style file. A COCO file has complete labels: use '
                    'CocoMultiLabelDataset (with PartialLabelDataset).')
            pos = positives[img_id]
            # Present but not every instance annotated: as in the official
            # LVIS evaluation, only annotated categories count as present,
            # so a listed category without an annotation stays unknown.
            claims = dict(pos)
            for cls in self._categories(img, 'not_exhaustive_category_ids',
                                        column, where):
                claims.setdefault(cls, 'not_exhaustive_category_ids')
            neg = self._categories(img, 'neg_category_ids', column, where)
            both = sorted(set(claims) & set(neg))
            if both:
                raise InvalidInputError(
                    f'{where}: the class {names[both[0]]!r} is in '
                    f'"neg_category_ids" but also positive '
                    f'({claims[both[0]]}) (contradictory labels). An image '
                    'cannot be verified both to have and to lack a class: '
                    'fix the entry.')
            yield self._file_name(img, where), sorted(pos), neg, where

    @staticmethod
    def _categories(img: dict, field: str, column: dict,
                    where: str) -> List[int]:
        ids = img.get(field, [])
        if not isinstance(ids, list):
            raise InvalidInputError(
                f'{where}: the field "{field}" is {short_repr(ids)}; '
                'expected a list of category ids.')
        classes = set()
        for cat_id in ids:
            # true == 1 and 1.0 == 1 would silently match category 1.
            if (isinstance(cat_id, bool) or not isinstance(cat_id, (int, str))
                    or cat_id not in column):
                raise InvalidInputError(
                    f'{where}, field "{field}": the category id {cat_id!r} '
                    'is not among the "categories" (unknown class). Fix the '
                    'id or add the category.')
            classes.add(column[cat_id])
        return sorted(classes)

    @staticmethod
    def _file_name(img: dict, where: str) -> str:
        if 'file_name' in img:
            return img['file_name']
        url = img.get('coco_url')
        if isinstance(url, str) and url.count('/') >= 1:
            return '/'.join(url.rstrip('/').split('/')[-2:])
        raise InvalidInputError(
            f'{where} has neither "file_name" nor a "coco_url" (missing '
            'image); one of them names the image file.')
