"""Writers of tiny datasets in their real on-disk formats.

Each ``write_*`` function lays out a dataset under ``root`` exactly as the
corresponding dataset class expects it and returns the expected label matrix
(``np.int64``, shape ``(num_images, num_classes)``, 1 = positive,
0 = negative) in dataset order, so any test can build a dataset and compare.
Multiply by 2 and subtract 1 for the {1, -1} convention of the partial-label
protocol.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

# Non-contiguous ids, deliberately listed out of order: the class order must
# come from sorting ids (2, 7, 13, 90), not from the list order.
COCO_CATEGORIES = [
    dict(id=7, name='cat', supercategory='animal'),
    dict(id=2, name='bicycle', supercategory='vehicle'),
    dict(id=90, name='toothbrush', supercategory='indoor'),
    dict(id=13, name='stop sign', supercategory='outdoor'),
]
COCO_CLASSES = ('bicycle', 'cat', 'stop sign', 'toothbrush')

# Image ids out of order as well; id 17 has no annotation at all.
COCO_IMAGES = [
    dict(id=42, file_name='COCO_train2014_000000000042.jpg'),
    dict(id=5, file_name='COCO_train2014_000000000005.jpg'),
    dict(id=17, file_name='COCO_train2014_000000000017.jpg'),
    dict(id=99, file_name='COCO_train2014_000000000099.jpg'),
]
COCO_ANNOTATIONS = [
    dict(id=1, image_id=5, category_id=90),
    dict(id=2, image_id=42, category_id=7),
    dict(id=3, image_id=42, category_id=2),
    dict(id=4, image_id=42, category_id=7),  # repeated class
    dict(id=5, image_id=99, category_id=13, iscrowd=1),  # crowd counts
    dict(id=6, image_id=5, category_id=2),
]

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')

# image id -> objects as (name, difficult); difficult None = no tag at all.
VOCObjects = List[Tuple[str, Optional[int]]]
VOC_OBJECTS: Dict[str, VOCObjects] = {
    '000005': [('chair', 0), ('chair', 1), ('person', 0)],
    '000002': [('train', 0), ('dog', 1)],  # dog is difficult-only
    '000009': [('horse', None), ('person', 1), ('person', 0)],
    '000012': [('car', 1)],  # nothing but a difficult object
}
VOC_SPLIT = ['000005', '000002', '000009', '000012']

VG_NUM_CLASSES = 200
VG_TRAIN = ['2.jpg', '1.jpg', '10.jpg']
VG_TEST = ['3.jpg', '4.jpg']
VG_LABELS = {
    '1.jpg': [5, 0, 5],  # repeated index
    '2.jpg': [199, 17],
    '10.jpg': [],
    '3.jpg': [3],
    '4.jpg': [4, 150],
    '11.jpg': [1],  # in no list: must be ignored
}


def write_jpeg(path: str,
               color: Tuple[int, int, int] = (128, 64, 32),
               size: int = 8) -> None:
    """Write a tiny solid-colour JPEG, creating parent directories."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.new('RGB', (size, size), color).save(path, format='JPEG')


def write_coco(root: str,
               images: Optional[list] = None,
               annotations: Optional[list] = None,
               categories: Optional[list] = None,
               ann_file: str = 'annotations/instances_train2014.json',
               img_dir: str = 'train2014') -> np.ndarray:
    """Write a COCO-format instances JSON and its images under ``root``.

    Args:
        root (str): Dataset root (``data_root``).
        images, annotations, categories (list, optional): JSON lists;
            default to the module-level ``COCO_*`` constants.
        ann_file (str): JSON path relative to ``root``.
        img_dir (str): Image directory relative to ``root``.

    Returns:
        np.ndarray: Expected (num_images, num_categories) label matrix, rows
        in ``images`` order, columns in ascending category id order.
    """
    images = COCO_IMAGES if images is None else images
    annotations = COCO_ANNOTATIONS if annotations is None else annotations
    categories = COCO_CATEGORIES if categories is None else categories

    ann_path = osp.join(root, ann_file)
    os.makedirs(osp.dirname(ann_path), exist_ok=True)
    with open(ann_path, 'w') as f:
        json.dump(
            dict(
                info=dict(description='sarb_mm test fixture'),
                images=images,
                annotations=annotations,
                categories=categories), f)
    for i, img in enumerate(images):
        write_jpeg(osp.join(root, img_dir, img['file_name']), (i * 40, 0, 0))

    cat_ids = sorted({c['id'] for c in categories})
    col = {cat_id: j for j, cat_id in enumerate(cat_ids)}
    row = {img['id']: i for i, img in enumerate(images)}
    labels = np.zeros((len(images), len(cat_ids)), dtype=np.int64)
    for ann in annotations:
        # Dangling references (written on purpose by error tests) are skipped.
        if ann['image_id'] in row and ann['category_id'] in col:
            labels[row[ann['image_id']], col[ann['category_id']]] = 1
    return labels


def voc_xml(objects: VOCObjects, img_id: str = '000000') -> str:
    """Return the text of a VOC annotation XML with the given objects."""
    parts = [
        '<annotation>', '  <folder>VOC2007</folder>',
        f'  <filename>{img_id}.jpg</filename>',
        '  <size><width>8</width><height>8</height><depth>3</depth></size>'
    ]
    for name, difficult in objects:
        parts += [
            '  <object>', f'    <name>{name}</name>',
            '    <pose>Unspecified</pose>', '    <truncated>0</truncated>'
        ]
        if difficult is not None:
            parts.append(f'    <difficult>{difficult}</difficult>')
        parts += [
            '    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>7</xmax>'
            '<ymax>7</ymax></bndbox>', '  </object>'
        ]
    parts.append('</annotation>')
    return '\n'.join(parts) + '\n'


def write_voc(
    root: str,
    objects: Optional[Dict[str, VOCObjects]] = None,
    split_ids: Optional[Sequence[str]] = None,
    split: str = 'trainval',
    return_difficult: bool = False
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Write a ``VOCdevkit/VOC2007``-style directory at ``root``.

    The split file gets a blank line in the middle and a trailing one, as
    hand-edited split files often do.

    Args:
        root (str): The ``VOC2007`` directory (``data_root``).
        objects (dict, optional): Image id -> list of ``(name, difficult)``;
            ``difficult=None`` writes no ``<difficult>`` tag. Defaults to
            ``VOC_OBJECTS``.
        split_ids (Sequence[str], optional): Ids in split-file order.
            Defaults to ``VOC_SPLIT`` (or the keys of ``objects``).
        split (str): Name of the split file. Defaults to ``'trainval'``.
        return_difficult (bool): Also return the difficult-only matrix.

    Returns:
        np.ndarray | tuple: Expected ``gt_label`` matrix (difficult objects
        skipped; identical in both ``difficult`` modes), and with
        ``return_difficult`` the matrix of classes present only as difficult
        (``gt_label_difficult`` in ``difficult='ignore'`` mode).
    """
    objects = VOC_OBJECTS if objects is None else objects
    if split_ids is None:
        split_ids = VOC_SPLIT if objects is VOC_OBJECTS else list(objects)

    os.makedirs(osp.join(root, 'ImageSets', 'Main'), exist_ok=True)
    os.makedirs(osp.join(root, 'Annotations'), exist_ok=True)
    os.makedirs(osp.join(root, 'JPEGImages'), exist_ok=True)
    lines = list(split_ids)
    lines.insert(len(lines) // 2, '')
    with open(osp.join(root, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n\n')
    for i, img_id in enumerate(split_ids):
        with open(osp.join(root, 'Annotations', f'{img_id}.xml'), 'w') as f:
            f.write(voc_xml(objects[img_id], img_id))
        write_jpeg(
            osp.join(root, 'JPEGImages', f'{img_id}.jpg'), (0, i * 40, 0))

    idx = {name: j for j, name in enumerate(VOC_CLASSES)}
    labels = np.zeros((len(split_ids), len(VOC_CLASSES)), dtype=np.int64)
    difficult = np.zeros_like(labels)
    for i, img_id in enumerate(split_ids):
        for name, diff in objects[img_id]:
            if diff:
                difficult[i, idx[name]] = 1
            else:
                labels[i, idx[name]] = 1
    difficult[labels == 1] = 0
    return (labels, difficult) if return_difficult else labels


def write_vg(root: str,
             train: Optional[Sequence[str]] = None,
             test: Optional[Sequence[str]] = None,
             labels: Optional[dict] = None,
             split: str = 'train',
             num_classes: int = VG_NUM_CLASSES) -> np.ndarray:
    """Write the VG-200 release files and images under ``root``.

    Args:
        root (str): Dataset root (``data_root``).
        train, test (Sequence[str], optional): Image file names of the two
            list files. Default to ``VG_TRAIN`` / ``VG_TEST``.
        labels (dict, optional): File name -> class indices (the label
            JSON). Defaults to ``VG_LABELS``.
        split (str): Split whose matrix is returned. Defaults to ``'train'``.
        num_classes (int): Columns of the returned matrix. Defaults to 200.

    Returns:
        np.ndarray: Expected label matrix of ``split``, in list order.
    """
    train = VG_TRAIN if train is None else train
    test = VG_TEST if test is None else test
    labels = VG_LABELS if labels is None else labels

    os.makedirs(osp.join(root, 'VG_100K'), exist_ok=True)
    for name, files in (('train', train), ('test', test)):
        with open(osp.join(root, f'{name}_list_500.txt'), 'w') as f:
            f.write(''.join(f'{file}\n' for file in files))
    with open(osp.join(root, 'vg_category_200_labels_index.json'), 'w') as f:
        json.dump(labels, f)
    for i, name in enumerate([*train, *test]):
        write_jpeg(osp.join(root, 'VG_100K', name), (0, 0, i * 40))

    files = train if split == 'train' else test
    matrix = np.zeros((len(files), num_classes), dtype=np.int64)
    for i, name in enumerate(files):
        matrix[i, labels[name]] = 1
    return matrix


def label_matrix(dataset,
                 num_classes: int,
                 key: str = 'gt_label') -> np.ndarray:
    """Multi-hot matrix of ``key`` over a built dataset, in dataset order."""
    matrix = np.zeros((len(dataset), num_classes), dtype=np.int64)
    for i in range(len(dataset)):
        matrix[i, dataset.get_data_info(i)[key]] = 1
    return matrix
