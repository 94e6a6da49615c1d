"""PASCAL VOC 2007 as a multi-label dataset."""
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, Optional, Set, Tuple, Union

from mmpretrain.datasets import MultiLabelDataset
from mmpretrain.registry import DATASETS

from .utils import (check_class_names, check_file_name, read_list_file,
                    require_dir, require_file)

VOC2007_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                   'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
                   'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
                   'train', 'tvmonitor')

DIFFICULT_MODES = ('negative', 'ignore')
# VOC annotation files are a few KB (the largest of VOC 2007 about 6 KB).
MAX_XML_BYTES = 4 * 1024**2

_LAYOUT = """\
VOCdevkit/VOC2007/            <- data_root
|-- Annotations/{img_id}.xml
|-- ImageSets/Main/{split}.txt    (one image id per line)
`-- JPEGImages/{img_id}.jpg"""


@DATASETS.register_module()
class VOC2007MultiLabelDataset(MultiLabelDataset):
    """PASCAL VOC 2007 image-level labels from the detection annotations.

    The dataset order is the line order of ``ImageSets/Main/{split}.txt``
    (blank lines skipped). Classes are the 20 VOC names in the usual
    alphabetical order (``aeroplane`` = 0 ... ``tvmonitor`` = 19).

    Objects marked ``<difficult>1</difficult>`` are handled by ``difficult``:

    - ``'negative'`` (default, the setting of the published SARB numbers):
      difficult objects are skipped, so a class present only as difficult is
      a negative. ``gt_label_difficult`` is still emitted, always empty, so
      pipelines and :class:`mmpretrain.evaluation.VOCMetric` that expect the
      key keep working and treat nothing as difficult.
    - ``'ignore'`` (mmpretrain's convention): a class present only as
      difficult goes to ``gt_label_difficult`` instead of ``gt_label``, for
      metrics that leave such classes out.

    A missing ``<difficult>`` tag means not difficult.

    Image ids are checked when the dataset is built, and each problem is an
    error naming the split file and the fix: an id may not leave the data
    root (an absolute path, a ``..`` component or a URL) unless
    ``allow_outside_data_root=True``, and an id listed twice is an error
    rather than a warning, because the image would silently count twice in
    training and evaluation. Repeated class names (given through
    ``metainfo``/``classes``) are errors too: they would merge in
    ``class_to_idx``.

    Args:
        data_root (str): The ``VOCdevkit/VOC2007`` directory.
        split (str): Image set under ``ImageSets/Main``, e.g. ``'trainval'``
            or ``'test'``. Defaults to ``'trainval'``.
        difficult (str): ``'negative'`` or ``'ignore'``, see above.
            Defaults to ``'negative'``.
        data_prefix (str | dict): Image directory, or a dict with
            ``img_path`` and optionally ``ann_path`` (XML directory).
            Defaults to ``dict(img_path='JPEGImages',
            ann_path='Annotations')``.
        metainfo (dict, optional): Meta information. Defaults to None.
        allow_outside_data_root (bool): Accept image ids that leave the
            data root (absolute paths, ``..``, URLs). Defaults to False.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ...).
    """

    METAINFO = {'classes': VOC2007_CLASSES}

    def __init__(self,
                 data_root: str,
                 split: str = 'trainval',
                 difficult: str = 'negative',
                 data_prefix: Union[str, dict] = dict(
                     img_path='JPEGImages', ann_path='Annotations'),
                 metainfo: Optional[dict] = None,
                 allow_outside_data_root: bool = False,
                 **kwargs) -> None:
        if not isinstance(allow_outside_data_root, bool):
            raise TypeError('`allow_outside_data_root` must be True or '
                            f'False, but got {allow_outside_data_root!r}.')
        self.allow_outside_data_root = allow_outside_data_root
        if difficult not in DIFFICULT_MODES:
            raise ValueError(f'`difficult` must be one of {DIFFICULT_MODES}, '
                             f'but got {difficult!r}.')
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        if not isinstance(data_prefix, dict) or 'img_path' not in data_prefix:
            raise ValueError('`data_prefix` must be a str or a dict with key '
                             f'"img_path", but got {data_prefix!r}.')
        data_prefix = {'ann_path': 'Annotations', **data_prefix}
        self.split = split
        self.difficult = difficult
        super().__init__(
            ann_file=osp.join('ImageSets', 'Main', f'{split}.txt'),
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    @property
    def ann_prefix(self) -> str:
        """Directory of the XML annotations."""
        return self.data_prefix['ann_path']

    def load_data_list(self) -> List[dict]:
        """Read the split file and each image's XML, in split order."""
        require_dir(self.data_root, 'VOC data_root', _LAYOUT)
        nested = osp.join(self.data_root, 'VOC2007')
        if not osp.isfile(self.ann_file) and osp.isdir(nested):
            # A common slip: pointing at VOCdevkit instead of VOC2007.
            raise FileNotFoundError(
                f'VOC split file not found: {self.ann_file!r}; data_root '
                f'looks like a VOCdevkit directory, pass {nested!r} as '
                f'data_root.\nExpected dataset layout:\n{_LAYOUT}')
        require_file(self.ann_file, 'VOC split file', _LAYOUT)
        require_dir(self.ann_prefix, 'VOC annotation directory', _LAYOUT)
        require_dir(self.img_prefix, 'VOC image directory', _LAYOUT)

        check_class_names(self.CLASSES, 'VOC class names')
        data_list = []
        for img_id in read_list_file(self.ann_file, 'VOC split file'):
            check_file_name(
                img_id, f'VOC split file {self.ann_file!r} '
                'lists image id', self.allow_outside_data_root)
            labels, difficult_only = self._parse_xml(
                osp.join(self.ann_prefix, f'{img_id}.xml'))
            if self.difficult == 'negative':
                difficult_only = set()
            data_list.append(
                dict(
                    img_path=osp.join(self.img_prefix, f'{img_id}.jpg'),
                    gt_label=sorted(labels),
                    gt_label_difficult=sorted(difficult_only)))
        return data_list

    def _parse_xml(self, xml_path: str) -> Tuple[Set[int], Set[int]]:
        """Return (classes with a non-difficult object, difficult-only)."""
        require_file(xml_path, 'VOC annotation file', _LAYOUT)
        size = osp.getsize(xml_path)
        if size > MAX_XML_BYTES:
            # A real one is a few KB; parsing a padded one would build its
            # whole text in memory.
            raise ValueError(
                f'VOC annotation file {xml_path!r} is {size} bytes, more '
                f'than the {MAX_XML_BYTES} an annotation can need; it is not '
                'a VOC annotation. Replace it with the original file.')
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as e:
            raise ValueError(
                f'VOC annotation file {xml_path!r} is not valid XML: {e}'
            ) from None

        class_to_idx = self.class_to_idx
        labels, difficult_labels = set(), set()
        for i, obj in enumerate(root.iter('object')):
            name_tag = obj.find('name')
            name = (name_tag.text or '').strip() if name_tag is not None \
                else ''
            if not name:
                raise ValueError(f'VOC annotation file {xml_path!r}: object '
                                 f'#{i} has no <name>.')
            if name not in class_to_idx:
                raise ValueError(
                    f'VOC annotation file {xml_path!r}: object #{i} has '
                    f'unknown class name {name!r}; allowed names are '
                    f'{list(class_to_idx)}.')
            if self._is_difficult(obj, xml_path, i):
                difficult_labels.add(class_to_idx[name])
            else:
                labels.add(class_to_idx[name])
        return labels, difficult_labels - labels

    @staticmethod
    def _is_difficult(obj: ET.Element, xml_path: str, i: int) -> bool:
        text = (obj.findtext('difficult') or '').strip()
        if not text:
            return False
        try:
            return int(text) != 0
        except ValueError:
            raise ValueError(
                f'VOC annotation file {xml_path!r}: object #{i} has '
                f'<difficult>{text}</difficult>; expected 0 or 1.') from None

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return [
            f'Split file: \t{self.ann_file}',
            f'Prefix of images: \t{self.img_prefix}',
            f'Prefix of annotations: \t{self.ann_prefix}',
            f'Difficult objects: \t{self.difficult}',
        ]
