import copy
import json
import os
import os.path as osp
import re

import numpy as np
import pytest

import sarb_mm  # noqa: F401
from sarb_mm.datasets import LVISPartialDataset
from sarb_mm.datasets.partial_wrapper import full_label_matrix
from sarb_mm.utils.errors import InvalidInputError
from .fixtures import write_jpeg

# LVIS v1 layout: categories with synset / frequency, images with coco_url
# (no file_name), neg_category_ids and not_exhaustive_category_ids.
CATEGORIES = [
    dict(id=3, name='apple', synset='apple.n.01', frequency='f'),
    dict(id=1, name='aerosol_can', synset='aerosol.n.02', frequency='c'),
    dict(id=12, name='zebra', synset='zebra.n.01', frequency='r'),
    dict(id=7, name='banana', synset='banana.n.02', frequency='f'),
]
CLASSES = ('aerosol_can', 'apple', 'banana', 'zebra')  # by ascending id
URL = 'http://images.cocodataset.org/{}/{:012d}.jpg'
IMAGES = [
    dict(
        id=9,
        coco_url=URL.format('train2017', 9),
        height=8,
        width=8,
        neg_category_ids=[12, 1],
        not_exhaustive_category_ids=[3]),
    dict(
        id=25,
        coco_url=URL.format('val2017', 25),
        height=8,
        width=8,
        neg_category_ids=[],
        # Listed but not annotated on this image: unknown, as the official
        # LVIS evaluation counts only annotated categories as present.
        not_exhaustive_category_ids=[7]),
    dict(
        id=4,
        coco_url=URL.format('train2017', 4),
        height=8,
        width=8,
        neg_category_ids=[3, 7, 12],
        not_exhaustive_category_ids=[]),
]
ANNOTATIONS = [
    dict(id=1, image_id=9, category_id=3, bbox=[0, 0, 2, 2], area=4.0),
    dict(id=2, image_id=9, category_id=3, bbox=[2, 2, 2, 2], area=4.0),
    dict(id=3, image_id=9, category_id=7, bbox=[1, 1, 2, 2], area=4.0),
    dict(id=4, image_id=4, category_id=1, bbox=[1, 1, 2, 2], area=4.0),
]
# Rows in IMAGES order, columns CLASSES: 1 positive, -1 negative, 0 unknown.
EXPECTED = np.array([[-1, 1, 1, -1], [0, 0, 0, 0], [1, -1, -1, -1]],
                    dtype=np.int8)


def lvis_json(images=IMAGES, annotations=ANNOTATIONS, categories=CATEGORIES):
    return dict(
        info=dict(description='tiny LVIS'),
        licenses=[],
        images=copy.deepcopy(images),
        annotations=copy.deepcopy(annotations),
        categories=copy.deepcopy(categories))


def write_lvis(root, data=None, images=True):
    data = lvis_json() if data is None else data
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    path = osp.join(root, 'annotations', 'lvis_v1_train.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    if images:
        for img in data['images']:
            name = img.get('file_name') or '/'.join(
                img['coco_url'].split('/')[-2:])
            write_jpeg(osp.join(root, name))
    return path


def test_known_labels_from_annotations_and_negative_ids(tmp_path):
    write_lvis(str(tmp_path))
    dataset = LVISPartialDataset(data_root=str(tmp_path))
    assert dataset.metainfo['classes'] == CLASSES
    np.testing.assert_array_equal(full_label_matrix(dataset), EXPECTED)
    assert [dataset.get_data_info(i)['img_path'] for i in range(3)] == [
        osp.join(str(tmp_path), 'train2017', '000000000009.jpg'),
        osp.join(str(tmp_path), 'val2017', '000000000025.jpg'),
        osp.join(str(tmp_path), 'train2017', '000000000004.jpg'),
    ]
    for idx in range(3):
        info = dataset.get_data_info(idx)
        np.testing.assert_array_equal(info['gt_score'], EXPECTED[idx])
        assert info['gt_label_difficult'] == np.flatnonzero(
            EXPECTED[idx] == 0).tolist()


def test_file_name_of_lvis_v05(tmp_path):
    images = copy.deepcopy(IMAGES)
    for img in images:
        img['file_name'] = f'img_{img["id"]}.jpg'
        del img['coco_url']
    write_lvis(str(tmp_path), lvis_json(images=images))
    dataset = LVISPartialDataset(
        data_root=str(tmp_path), data_prefix='', missing_images='error')
    assert osp.basename(dataset.get_data_info(1)['img_path']) == 'img_25.jpg'
    np.testing.assert_array_equal(dataset.known_label_matrix(), EXPECTED)


def _changed(change):
    data = lvis_json()
    change(data)
    return data


BAD = [
    (lambda d: d['images'][1].update(neg_category_ids=[5]),
     r"image id 25, field \"neg_category_ids\": the category id 5 is not "
     r'among the "categories" \(unknown class\)'),
    (lambda d: d['images'][1].update(neg_category_ids=[True]),
     r'image id 25, field "neg_category_ids": the category id True'),
    (lambda d: d['images'][0].update(neg_category_ids=[3]),
     r"image id 9: the class 'apple' is in \"neg_category_ids\" but also "
     r'positive \(annotation id 1\) \(contradictory labels\)'),
    (lambda d: d['images'][1].update(neg_category_ids=[7]),
     r"image id 25: the class 'banana' is in \"neg_category_ids\" but also "
     r'positive \(not_exhaustive_category_ids\)'),
    (lambda d: d['images'][2].pop('neg_category_ids'),
     r'image id 4 has no "neg_category_ids"; this is not an LVIS-style '
     r'file'),
    (lambda d: d['images'][2].pop('coco_url'),
     r'image id 4 has neither "file_name" nor a "coco_url" \(missing '
     r'image\)'),
    (lambda d: d['images'][2].update(coco_url=URL.format('train2017', 9)),
     r"image id 4 lists the image 'train2017/000000000009.jpg' again; it "
     r'was first listed at .*image id 9'),
    (lambda d: d['images'].append(dict(d['images'][0])),
     r'duplicate id 9 in "images"'),
    (lambda d: d['annotations'].append(dict(id=9, image_id=4, category_id=99)),
     r'annotation id 9 has category_id 99, which is not among the '
     r'categories'),
]


@pytest.mark.parametrize('change, match', BAD)
def test_bad_entries_name_file_image_and_field(tmp_path, change, match):
    path = write_lvis(str(tmp_path), _changed(change), images=False)
    for name in ('train2017', 'val2017'):
        os.makedirs(osp.join(str(tmp_path), name), exist_ok=True)
    with pytest.raises(ValueError) as err:
        LVISPartialDataset(data_root=str(tmp_path), missing_images='unchecked')
    message = str(err.value)
    assert repr(path) in message
    assert re.search(match, message), message


def test_missing_image_file(tmp_path):
    write_lvis(str(tmp_path))
    os.remove(osp.join(str(tmp_path), 'val2017', '000000000025.jpg'))
    with pytest.raises(
            InvalidInputError,
            match=r"image id 25: the image "
            r"'val2017/000000000025.jpg' is not found"):
        LVISPartialDataset(data_root=str(tmp_path))
    dataset = LVISPartialDataset(
        data_root=str(tmp_path), missing_images='skip')
    np.testing.assert_array_equal(dataset.known_label_matrix(),
                                  EXPECTED[[0, 2]])
