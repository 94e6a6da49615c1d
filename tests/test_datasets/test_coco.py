import json
import os.path as osp
import re
import shutil

import numpy as np
import pytest

import sarb_mm  # noqa: F401  (registers the datasets)
from mmpretrain.registry import DATASETS
from sarb_mm.datasets import CocoMultiLabelDataset

from .fixtures import (COCO_ANNOTATIONS, COCO_CATEGORIES, COCO_CLASSES,
                       COCO_IMAGES, label_matrix, write_coco)

ANN = 'annotations/instances_train2014.json'


def build(root, **kwargs):
    return DATASETS.build(
        dict(type='CocoMultiLabelDataset', data_root=str(root), **kwargs))


def rewrite_json(root, edit):
    path = osp.join(root, ANN)
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def test_order_classes_and_labels(tmp_path):
    expected = write_coco(str(tmp_path))
    ds = build(tmp_path)

    assert isinstance(ds, CocoMultiLabelDataset)
    assert len(ds) == len(COCO_IMAGES)
    assert ds.CLASSES == COCO_CLASSES
    assert ds.metainfo['classes'] == COCO_CLASSES
    # Order of the `images` list (ids 42, 5, 17, 99), not sorted by id;
    # image 17 has no annotation and is kept with no positive.
    assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))] == [
        [0, 1], [0, 3], [], [2]
    ]
    np.testing.assert_array_equal(label_matrix(ds, 4), expected)
    assert ds.get_data_info(1)['img_path'] == osp.join(
        str(tmp_path), 'train2014', 'COCO_train2014_000000000005.jpg')
    assert ds.get_cat_ids(0) == [0, 1]


def test_prefix_forms_and_absolute_ann_file(tmp_path):
    write_coco(str(tmp_path), ann_file='ann/val.json', img_dir='val2014')
    ds = CocoMultiLabelDataset(
        data_root=str(tmp_path),
        ann_file=osp.join(str(tmp_path), 'ann', 'val.json'),
        data_prefix=dict(img_path='val2014'))
    assert len(ds) == 4
    assert ds.get_data_info(0)['img_path'] == osp.join(
        str(tmp_path), 'val2014', COCO_IMAGES[0]['file_name'])

    with pytest.raises(ValueError, match='img_path'):
        CocoMultiLabelDataset(data_root=str(tmp_path), data_prefix=dict())


def test_ten_category_generated_dataset(tmp_path):
    cats = [dict(id=100 - 3 * i, name=f'c{i}') for i in range(10)]
    images = [dict(id=i, file_name=f'{i}.jpg') for i in range(3)]
    anns = [dict(id=1, image_id=2, category_id=100),
            dict(id=2, image_id=0, category_id=73)]
    expected = write_coco(str(tmp_path), images, anns, cats)
    ds = build(tmp_path)
    assert ds.CLASSES == tuple(f'c{i}' for i in range(9, -1, -1))
    np.testing.assert_array_equal(label_matrix(ds, 10), expected)
    assert ds.get_data_info(2)['gt_label'] == [9]
    assert ds.get_data_info(0)['gt_label'] == [0]


def test_pipeline_lazy_init_and_class_override(tmp_path):
    write_coco(str(tmp_path))
    ds = build(
        tmp_path,
        lazy_init=True,
        test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])
    assert not ds._fully_initialized
    assert len(ds) == 4  # triggers full_init
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (3, 8, 8)
    assert sample['data_samples'].gt_label.tolist() == [0, 1]

    names = ['b', 'c', 's', 't']
    assert build(tmp_path, classes=names).CLASSES == tuple(names)
    with pytest.raises(ValueError, match=r'3 class names.*4 categories'):
        build(tmp_path, metainfo=dict(classes=['a', 'b', 'c']))


def test_missing_paths(tmp_path):
    missing = tmp_path / 'nope'
    with pytest.raises(FileNotFoundError,
                       match=re.escape(str(missing)) +
                       r"(.|\n)*Expected dataset layout(.|\n)*"
                       r'instances_train2014\.json'):
        build(missing)

    root = tmp_path / 'coco'
    root.mkdir()
    with pytest.raises(FileNotFoundError,
                       match=re.escape(osp.join(str(root), ANN)) +
                       r"(.|\n)*train2014/"):
        build(root)

    write_coco(str(root))
    shutil.rmtree(root / 'train2014')
    with pytest.raises(FileNotFoundError,
                       match='image directory(.|\n)*' +
                       re.escape(osp.join(str(root), 'train2014'))):
        build(root)


def test_malformed_json(tmp_path):
    write_coco(str(tmp_path))
    path = osp.join(str(tmp_path), ANN)
    with open(path, 'w') as f:
        f.write('{"images": [')
    with pytest.raises(ValueError,
                       match=re.escape(path) + '.*not valid JSON'):
        build(tmp_path)


@pytest.mark.parametrize('key', ['images', 'annotations', 'categories'])
def test_missing_top_level_key(tmp_path, key):
    write_coco(str(tmp_path))
    path = rewrite_json(str(tmp_path), lambda d: d.pop(key))
    with pytest.raises(ValueError,
                       match=re.escape(path) + f'.*lacks key "{key}"'):
        build(tmp_path)


def test_bad_references_and_empty(tmp_path):
    anns = COCO_ANNOTATIONS + [dict(id=77, image_id=5, category_id=3)]
    write_coco(str(tmp_path), annotations=anns)
    path = osp.join(str(tmp_path), ANN)
    with pytest.raises(ValueError,
                       match=re.escape(path) +
                       r'.*annotation id 77 has category_id 3'):
        build(tmp_path)

    anns = COCO_ANNOTATIONS + [dict(id=88, image_id=1234, category_id=2)]
    write_coco(str(tmp_path), annotations=anns)
    with pytest.raises(ValueError,
                       match=re.escape(path) +
                       r'.*annotation id 88 references image_id 1234'):
        build(tmp_path)

    write_coco(str(tmp_path), images=[], annotations=[])
    with pytest.raises(ValueError, match=re.escape(path) + '.*no images'):
        build(tmp_path)

    cats = COCO_CATEGORIES + [dict(id=7, name='dup')]
    write_coco(str(tmp_path), categories=cats, annotations=[])
    with pytest.raises(ValueError, match='duplicate id 7 in "categories"'):
        build(tmp_path)
