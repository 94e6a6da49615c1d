"""Base class of datasets whose annotation files are partial themselves.

In these formats (OpenImages image-level labels, LVIS, the JSON Lines format
of :class:`JsonLinesPartialDataset`) an image is verified for some classes
only: a class is a known positive, a known negative, or unknown. Nothing is
hidden on top (wrap the dataset in ``PartialLabelDataset`` for that).
"""
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset.base_dataset import force_full_init
from mmengine.logging import MMLogger
from mmpretrain.datasets import MultiLabelDataset

from sarb_mm.utils.errors import InvalidInputError
from .sparse_labels import (ImageLabels, ImageLabelsBuilder, SparseLabels,
                            subset_positions)
from .utils import (check_class_names, check_file_name, read_text_lines,
                    require_dir, short_repr)

MISSING_IMAGE_MODES = ('error', 'skip', 'unchecked')

# One image of an annotation file: its file name relative to the image
# directory, the indices of its known positive and known negative classes,
# and where it was read, e.g. "JSON Lines file 'a.jsonl', line 3".
Entry = Tuple[str, Iterable[int], Iterable[int], str]


class NativePartialDataset(MultiLabelDataset):
    """A multi-label dataset whose files give 1 / -1 / unknown per class.

    Subclasses parse their format in :meth:`read_annotations`; this class
    checks the image names, finds duplicates and missing images, and turns
    the entries into data infos.

    :meth:`get_data_info` gives, for each image:

    - ``gt_score``: float32 vector over the classes, 1 for a known positive,
      -1 for a known negative and 0 for unknown, the vector that
      ``SARBHead``, ``PartialBCELoss``, ``PrototypeHook`` and
      ``InterpolatedMultiLabelMetric`` read from the data samples (as the
      samples of ``PartialLabelDataset`` have it);
    - ``gt_label``: the known positive classes;
    - ``gt_label_difficult``: the unknown classes. That is the key through
      which this package leaves entries out: the metric ignores them (as VOC
      "difficult" objects in ``difficult='ignore'`` mode) and
      ``full_label_matrix`` makes them 0, so ``PartialLabelDataset`` keeps
      them unknown when it hides a further part of the known labels.

    The images are kept packed (:class:`ImageLabels`: the names and the
    known labels in compressed sparse rows, a few numpy arrays), never as
    one dict or dense vector per image: about 40 bytes plus 3 bytes per
    known label per image, shared by DataLoader workers without
    copy-on-write growth. :meth:`known_labels` gives the sparse rows.

    Args:
        ann_file (str): The annotation file, relative to ``data_root``.
        data_root (str): Dataset root. Defaults to ''.
        data_prefix (str | dict): Image directory, or
            ``dict(img_path=...)``. Defaults to ''.
        metainfo (dict, optional): ``classes`` given here (or via
            ``classes``) rename the classes of the file, one name per
            class in the file's class order. Defaults to None.
        missing_images (str): What to do with a listed image whose file does
            not exist under the image directory: ``'error'`` (default, the
            message names the annotation file and entry), ``'skip'`` (leave
            the image out and log how many were left out, e.g. when only
            part of OpenImages was downloaded) or ``'unchecked'`` (do not
            look at the files at build time; the image loader fails on a
            missing one later). With a URL image directory (``s3://``, ...)
            nothing is checked.
        allow_outside_data_root (bool): Accept image names that leave the
            image directory (absolute paths, ``..``, URLs). Defaults to
            False.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ``indices``, ...).
    """

    #: Name of the format in messages, e.g. ``'JSON Lines'``.
    format_name = 'partial-label'
    #: The expected files, shown in path errors (set by each format).
    _layout = ''

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 metainfo: Optional[dict] = None,
                 missing_images: str = 'error',
                 allow_outside_data_root: bool = False,
                 **kwargs) -> None:
        if missing_images not in MISSING_IMAGE_MODES:
            raise InvalidInputError(
                f'{type(self).__name__}: missing_images must be one of '
                f'{MISSING_IMAGE_MODES}, but got {missing_images!r}.')
        if not isinstance(allow_outside_data_root, bool):
            raise InvalidInputError(
                f'{type(self).__name__}: allow_outside_data_root must be '
                f'True or False, but got {allow_outside_data_root!r}.')
        if isinstance(data_prefix, dict) and 'img_path' not in data_prefix:
            raise InvalidInputError(
                f'{type(self).__name__}: data_prefix must be a str or a dict '
                f'with key "img_path", but got {data_prefix!r}.')
        self.missing_images = missing_images
        self.allow_outside_data_root = allow_outside_data_root
        # Tells InterpolatedMultiLabelMetric that gt_score holds -1/0/1
        # partial labels (a 0 is unknown), not mmpretrain's one-hot scores.
        metainfo = dict(metainfo or {}, partial_labels=True)
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def read_annotations(self) -> Tuple[List[str], Iterable[Entry]]:
        """Parse the annotation files.

        Returns:
            tuple: The class names in class-index order, and the images as
            ``(file_name, positives, negatives, where)`` entries in dataset
            order (an iterable, so a subclass may stream them).
        """
        raise NotImplementedError

    #: Whether :meth:`read_annotations` already guarantees one entry per
    #: image and names that stay in the image directory (then those checks
    #: are skipped, saving their time and memory on millions of images).
    names_are_checked = False

    def load_annotations(self) -> ImageLabels:
        """Read, check and pack the images and their known labels.

        The images are packed as they are read (:class:`ImageLabelsBuilder`),
        so no Python object is kept per image. A format that parses straight
        into sparse rows overrides this and calls :meth:`_finish`.
        """
        self._require_dirs()
        names, entries = self.read_annotations()
        self._set_classes(names)
        builder = ImageLabelsBuilder(len(self._metainfo['classes']))
        check_files = self._check_files()
        seen, missing = {}, []
        for number, (file_name, positives, negatives,
                     where) in enumerate(entries):
            if not self.names_are_checked:
                try:
                    check_file_name(file_name, f'{where}: the image is',
                                    self.allow_outside_data_root)
                except ValueError as err:
                    raise InvalidInputError(str(err)) from None
                key = osp.normpath(file_name)
                if key in seen:
                    raise InvalidInputError(
                        f'{where} lists the image {file_name!r} again; it '
                        f'was first listed at {self._where(seen[key])}. An '
                        'image listed twice would count twice in training '
                        'and evaluation: merge the two entries into one.')
                seen[key] = number  # its place, not its text: less memory
            if check_files and not self._image_exists(file_name, where):
                missing.append(osp.join(self.img_prefix, file_name))
                continue
            builder.append(file_name, positives, negatives)
        del seen
        return self._finish(builder.build(), missing)

    def _require_dirs(self) -> None:
        """The folders every format needs; read_annotations checks its
        files."""
        if self.data_root:
            require_dir(self.data_root, f'{self.format_name} data_root',
                        self._layout)
        if self.missing_images != 'unchecked':
            require_dir(self.img_prefix, f'{self.format_name} image directory',
                        self._layout)

    def _check_files(self) -> bool:
        return (self.missing_images != 'unchecked'
                and '://' not in self.img_prefix)

    def _image_exists(self, file_name: str, where: str) -> bool:
        """Whether the image file is there; an error in 'error' mode."""
        path = osp.join(self.img_prefix, file_name)
        if osp.isfile(path):
            return True
        if self.missing_images == 'error':
            raise InvalidInputError(
                f'{where}: the image {file_name!r} is not found at '
                f'{path!r}. Fix the name or the image directory '
                '(data_root / data_prefix), add the image, or set '
                "missing_images='skip' in the dataset config to "
                'leave out the images that are not there.')
        return False

    def _where(self, number: int) -> str:
        """Where entry ``number`` was read (the files are read again: only
        an error message needs it)."""
        _, entries = self.read_annotations()
        for i, entry in enumerate(entries):
            if i == number:
                return entry[3]
        return f'entry {number}'

    def _finish(self, images: ImageLabels, missing: List[str]) -> ImageLabels:
        if missing:
            MMLogger.get_current_instance().warning(
                f'{self.format_name} dataset {self.ann_file!r}: '
                f'{len(missing)} listed image(s) are not in the image '
                f'directory {self.img_prefix!r} and are left out '
                f"(missing_images='skip'), e.g. {missing[0]!r}.")
        if not len(images):
            raise InvalidInputError(
                f'{self.format_name} dataset {self.ann_file!r} has no image '
                f'to use ({len(missing)} listed image(s) are missing from '
                f'{self.img_prefix!r}); check the annotation file and the '
                'image directory.')
        self._log_summary(images.labels)
        return images

    def full_init(self) -> None:
        """Load the annotations into :class:`ImageLabels` (instead of
        mmengine's list of dicts, which costs about 1 KiB per image)."""
        if self._fully_initialized:
            return
        images = self.load_annotations()
        if self._indices is not None:
            images = images.subset(
                subset_positions(self._indices, len(images)))
        self._images = images
        self._fully_initialized = True

    def load_data_list(self) -> List[dict]:
        """The data infos as a list (what mmengine datasets build; this
        dataset keeps its images packed and builds an info on request)."""
        self.full_init()
        return [self.get_data_info(i) for i in range(len(self))]

    @force_full_init
    def __len__(self) -> int:
        return len(self._images)

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The data info of one image with its -1/0/1 ``gt_score``."""
        if not -len(self) <= idx < len(self):
            raise IndexError(f'index {idx} is out of range for '
                             f'{len(self)} images')
        idx = int(idx) + (len(self) if idx < 0 else 0)
        name, positives, negatives = self._images[idx]
        score = np.zeros(len(self._metainfo['classes']), dtype=np.float32)
        score[negatives] = -1
        score[positives] = 1
        return dict(
            img_path=osp.join(self.img_prefix, name),
            gt_label=positives.tolist(),
            gt_score=score,
            gt_label_difficult=np.flatnonzero(score == 0).tolist(),
            sample_idx=idx)

    @force_full_init
    def known_labels(self) -> SparseLabels:
        """The known labels in compressed sparse rows, in dataset order
        (no copy)."""
        return self._images.labels

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the known labels, equal to ``split_fingerprint`` of
        the dense -1/0/1 matrix (computed a chunk of rows at a time, once);
        checkpoints record it so that a resume on other labels is refused.
        """
        if getattr(self, '_fingerprint', None) is None:
            self._fingerprint = self.known_labels().fingerprint()
        return self._fingerprint

    @property
    def source(self) -> str:
        """Where the labels come from, for messages."""
        return f'the {self.format_name} labels of {self.ann_file}'

    def known_label_matrix(self) -> np.ndarray:
        """The dense (N_img, C) int8 matrix: 1 known positive, -1 known
        negative, 0 unknown (N_img x C bytes: for small datasets and tests;
        :meth:`known_labels` is the sparse form)."""
        return self.known_labels().to_dense()

    @force_full_init
    def get_subset_(self, indices: Union[Sequence[int], int]) -> None:
        self._fingerprint = None
        self._images = self._images.subset(
            subset_positions(indices, len(self._images)))

    @force_full_init
    def get_subset(self, indices: Union[Sequence[int], int]):
        subset = self._copy_without_annotation()
        subset._fingerprint = None
        subset._images = self._images.subset(
            subset_positions(indices, len(self._images)))
        return subset

    def _copy_without_annotation(self, memo=None):
        images = self.__dict__.pop('_images', None)
        try:
            return super()._copy_without_annotation(memo or {})
        finally:
            if images is not None:
                self._images = images

    def _set_classes(self, names: List[str]) -> None:
        """Take the class names from the file unless the user gave some."""
        given = self._metainfo.get('classes')
        if given is None:
            check_class_names(
                names, f'{self.format_name} classes of {self.ann_file!r}')
            self._metainfo['classes'] = tuple(names)
            return
        if len(given) != len(names):
            raise InvalidInputError(
                f'{len(given)} class names were given in metainfo/classes, '
                f'but the {self.format_name} annotations of '
                f'{self.ann_file!r} have {len(names)} classes; give one name '
                "per class (in the file's class order) or none to use the "
                'names of the file.')
        check_class_names(given, 'The class names given in metainfo/classes')

    def _log_summary(self, labels: SparseLabels) -> None:
        num_images, num_classes = labels.shape
        positives = labels.positive_counts()
        known = labels.known_count()
        logger = MMLogger.get_current_instance()
        logger.info(
            f'{self.format_name} dataset {self.ann_file!r}: {num_images} '
            f'images x {num_classes} classes, {known} known labels (known '
            f'ratio {known / (num_images * num_classes):.4f}), '
            f'{int(positives.sum())} known positives.')
        without = np.flatnonzero(positives == 0)
        if len(without):
            classes = self._metainfo['classes']
            shown = ', '.join(str(classes[i]) for i in without[:20])
            more = f' and {len(without) - 20} more' if len(without) > 20 \
                else ''
            logger.warning(
                f'{self.format_name} dataset {self.ann_file!r}: '
                f'{len(without)} of {num_classes} classes have no known '
                f'positive: {shown}{more}. In training they get no '
                'prototype and learn only from negatives; in evaluation '
                'they are left out of mAP.')

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return [
            f'Annotation file: \t{self.ann_file}',
            f'Prefix of images: \t{self.img_prefix}',
            f'Missing images: \t{self.missing_images}',
        ]


def class_index(names: Sequence[str]) -> dict:
    """Map each class name to its index."""
    return {name: i for i, name in enumerate(names)}


def describe_classes(names: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` class names, for error messages."""
    shown = ', '.join(short_repr(n, 40) for n in names[:limit])
    return shown + (f' ... ({len(names)} in all)'
                    if len(names) > limit else '')


def read_class_file(path: str, what: str) -> List[str]:
    """Read a file of class names, one per line, blank lines skipped.

    Surrounding white space is stripped. A name listed twice is an error
    naming both lines: it would merge two classes. The file is read line by
    line; a line longer than ``MAX_LINE_LENGTH`` (see :mod:`.utils`) is
    refused with its number.

    Args:
        path (str): The text file (UTF-8); its existence must already be
            checked.
        what (str): Role of the file in messages, e.g. ``'Class file'``.

    Returns:
        list[str]: The names in file order.
    """
    names, first = [], {}
    for lineno, line in read_text_lines(path, what):
        name = line.strip()
        if not name:
            continue
        if name in first:
            raise InvalidInputError(
                f'{what} {path!r} lists the class {name!r} twice, on lines '
                f'{first[name]} and {lineno}; every class must be listed '
                'once. Remove one of the lines.')
        first[name] = lineno
        names.append(name)
    if not names:
        raise InvalidInputError(f'{what} {path!r} lists no class; expected '
                                'one class name per line.')
    return names
