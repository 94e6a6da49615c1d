"""Visual Genome VG-200 (the SARB authors' 200-category split)."""
import os.path as osp
from typing import List, Optional, Union

from mmpretrain.datasets import MultiLabelDataset
from mmpretrain.registry import DATASETS

from .utils import (check_class_names, check_file_name, load_json_file,
                    read_list_file, require_dir, require_file, short_repr)

VG200_NUM_CLASSES = 200

SPLITS = ('train', 'test')

_LAYOUT = """\
<data_root>/
|-- train_list_500.txt    (split='train': one image file name per line)
|-- test_list_500.txt     (split='test')
|-- vg_category_200_labels_index.json    ({"<file name>": [class indices]})
`-- VG_100K/<file name>"""


@DATASETS.register_module()
class VG200MultiLabelDataset(MultiLabelDataset):
    """Visual Genome with the 200 categories of the SARB data release.

    The dataset order is the line order of the split's list file (blank lines
    skipped). Labels come from a JSON mapping each image file name to its
    class indices, which *are* the category order; there is no name list in
    the release, so classes default to ``vg_class_000`` ... ``vg_class_199``.
    Real names can be given as a list or a text file (one per line) through
    ``classes`` or ``metainfo=dict(classes=...)``; their number sets C, and
    every label index must lie in ``0..C-1``.

    The list file is checked when the dataset is built, and each problem
    is an error naming the file and the fix: a file name may not leave the
    data root (an absolute path, a ``..`` component or a URL) unless
    ``allow_outside_data_root=True``, and a file listed twice is an error
    rather than a warning, because the image would silently count twice in
    training and evaluation. Repeated class names are errors too: they
    would merge in ``class_to_idx``.

    Args:
        data_root (str): Directory holding the list files, the label JSON
            and the image directory.
        split (str): ``'train'`` or ``'test'``; picks the default list file.
            Defaults to ``'train'``.
        list_file (str, optional): List file relative to ``data_root``;
            overrides the split's default ``{split}_list_500.txt``.
            Defaults to None.
        label_file (str): Label JSON relative to ``data_root``.
            Defaults to ``'vg_category_200_labels_index.json'``.
        data_prefix (str | dict): Image directory, or ``dict(img_path=...)``.
            Defaults to ``'VG_100K'``.
        metainfo (dict, optional): Meta information. Defaults to None.
        allow_outside_data_root (bool): Accept list entries that leave the
            data root (absolute paths, ``..``, URLs). Defaults to False.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``classes``, ``pipeline``, ``test_mode``, ``lazy_init``, ...).
    """

    METAINFO = {
        'classes': tuple(f'vg_class_{i:03d}' for i in range(VG200_NUM_CLASSES))
    }

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 list_file: Optional[str] = None,
                 label_file: str = 'vg_category_200_labels_index.json',
                 data_prefix: Union[str, dict] = 'VG_100K',
                 metainfo: Optional[dict] = None,
                 allow_outside_data_root: bool = False,
                 **kwargs) -> None:
        if not isinstance(allow_outside_data_root, bool):
            raise TypeError('`allow_outside_data_root` must be True or '
                            f'False, but got {allow_outside_data_root!r}.')
        self.allow_outside_data_root = allow_outside_data_root
        if split not in SPLITS:
            raise ValueError(
                f'`split` must be one of {SPLITS}, but got {split!r}; use '
                '`list_file` for other image lists.')
        if isinstance(data_prefix, dict) and 'img_path' not in data_prefix:
            raise ValueError('`data_prefix` must be a str or a dict with key '
                             f'"img_path", but got {data_prefix!r}.')
        self.split = split
        # BaseDataset only joins ann_file and data_prefix with data_root.
        if data_root and not osp.isabs(label_file):
            label_file = osp.join(data_root, label_file)
        self.label_file = label_file
        super().__init__(
            ann_file=list_file or f'{split}_list_500.txt',
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the list file and look up each image's labels."""
        classes = self._metainfo.get('classes')
        if isinstance(classes, str):
            # mmengine keeps an unreadable class file path as a plain string.
            raise FileNotFoundError(
                f'VG class name file not found: {classes!r}; expected a '
                'text file with one class name per line, or a list.')
        require_dir(self.data_root, 'VG data_root', _LAYOUT)
        require_file(self.ann_file, 'VG image list file', _LAYOUT)
        require_file(self.label_file, 'VG label file', _LAYOUT)
        require_dir(self.img_prefix, 'VG image directory', _LAYOUT)

        label_index = load_json_file(self.label_file)
        if not isinstance(label_index, dict):
            raise ValueError(
                f'VG label file {self.label_file!r} must hold a JSON object '
                'mapping image file names to lists of class indices, but '
                f'holds a {type(label_index).__name__}.')

        check_class_names(self.CLASSES, 'VG class names')
        num_classes = len(self.CLASSES)
        data_list = []
        for name in read_list_file(self.ann_file, 'VG image list file'):
            check_file_name(name, f'VG image list file {self.ann_file!r} '
                            'lists', self.allow_outside_data_root)
            if name not in label_index:
                raise ValueError(
                    f'VG label file {self.label_file!r} has no entry for '
                    f'image {name!r} listed in {self.ann_file!r}.')
            labels = label_index[name]
            if not isinstance(labels, list):
                raise ValueError(
                    f'VG label file {self.label_file!r}: image {name!r} '
                    f'maps to {short_repr(labels)}; expected a list of class '
                    'indices.')
            for label in labels:
                # bool is an int subclass but never a valid class index.
                if (not isinstance(label, int) or isinstance(label, bool)
                        or not 0 <= label < num_classes):
                    raise ValueError(
                        f'VG label file {self.label_file!r}: image {name!r} '
                        f'has label {short_repr(label)}, expected an integer '
                        f'in 0..{num_classes - 1} ({num_classes} classes).')
            data_list.append(
                dict(
                    img_path=osp.join(self.img_prefix, name),
                    gt_label=sorted(set(labels))))
        return data_list

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return [
            f'Image list file: \t{self.ann_file}',
            f'Label file: \t{self.label_file}',
            f'Prefix of images: \t{self.img_prefix}',
        ]
