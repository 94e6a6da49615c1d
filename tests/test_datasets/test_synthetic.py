"""Tests of the generated demo dataset (``make_demo_dataset``)."""
import filecmp
import itertools
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from sarb_mm.datasets import synthetic
from sarb_mm.datasets.synthetic import DEMO_CATEGORIES, make_demo_dataset

SPLITS = ('train', 'val')


@pytest.fixture(scope='module')
def small_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    info = make_demo_dataset(
        str(root), num_train=40, num_val=10, image_size=48, seed=0)
    return root, info


def label_matrix(ann_file):
    """Image-by-class presence matrix, classes in category-id order."""
    with open(ann_file) as f:
        coco = json.load(f)
    cat_ids = sorted(c['id'] for c in coco['categories'])
    col = {cid: k for k, cid in enumerate(cat_ids)}
    row = {img['id']: k for k, img in enumerate(coco['images'])}
    labels = np.zeros((len(row), len(col)), dtype=np.int64)
    for ann in coco['annotations']:
        labels[row[ann['image_id']], col[ann['category_id']]] = 1
    return labels


def tree_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files)


def test_layout_and_return_value(small_demo):
    root, info = small_demo
    assert info['num_images'] == {'train': 40, 'val': 10}
    assert info['num_categories'] == len(DEMO_CATEGORIES) >= 10
    assert info['categories'] == DEMO_CATEGORIES
    for split in SPLITS:
        assert osp.isfile(info['ann_files'][split])
        assert info['ann_files'][split] == osp.join(
            str(root), 'annotations', f'instances_{split}.json')
        assert len(os.listdir(info['image_dirs'][split])) == \
            info['num_images'][split]
    # No temp files left behind by the atomic JSON write.
    assert sorted(os.listdir(root / 'annotations')) == [
        'instances_train.json', 'instances_val.json'
    ]


def test_coco_format(small_demo):
    root, info = small_demo
    for split in SPLITS:
        coco = COCO(info['ann_files'][split])
        cat_ids = coco.getCatIds()
        assert len(cat_ids) == len(DEMO_CATEGORIES)
        # Non-contiguous, like real COCO.
        assert sorted(cat_ids) != list(range(1, len(cat_ids) + 1))
        names = [c['name'] for c in coco.loadCats(sorted(cat_ids))]
        assert names == DEMO_CATEGORIES
        assert len(coco.getImgIds()) == info['num_images'][split]
        assert len(coco.getAnnIds()) == info['num_annotations'][split]
        for ann in coco.loadAnns(coco.getAnnIds()):
            assert ann['category_id'] in cat_ids
            assert ann['iscrowd'] == 0
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0 and ann['area'] > 0
            assert 0 <= x and x + w <= 48 + 1e-6
            assert 0 <= y and y + h <= 48 + 1e-6


def test_images_open_at_size(small_demo):
    root, info = small_demo
    for split in SPLITS:
        with open(info['ann_files'][split]) as f:
            images = json.load(f)['images']
        for img_info in images:
            assert (img_info['width'], img_info['height']) == (48, 48)
            with Image.open(root / split / img_info['file_name']) as img:
                assert img.format == 'JPEG'
                assert img.size == (48, 48)
                assert img.mode == 'RGB'


def test_deterministic(tmp_path):
    kwargs = dict(num_train=6, num_val=3, image_size=32)
    a, b, c = (str(tmp_path / n) for n in 'abc')
    make_demo_dataset(a, seed=1, **kwargs)
    make_demo_dataset(b, seed=1, **kwargs)
    make_demo_dataset(c, seed=2, **kwargs)

    files = tree_files(a)
    assert files == tree_files(b) == tree_files(c)
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []
    match, mismatch, errors = filecmp.cmpfiles(a, c, files, shallow=False)
    assert 'annotations/instances_train.json' in mismatch
    assert len([f for f in mismatch if f.endswith('.jpg')]) >= 8


def test_labels_do_not_depend_on_image_size(tmp_path):
    small = make_demo_dataset(
        str(tmp_path / 's'), num_train=30, num_val=0, image_size=32)
    large = make_demo_dataset(
        str(tmp_path / 'l'), num_train=30, num_val=0, image_size=80)
    np.testing.assert_array_equal(
        label_matrix(small['ann_files']['train']),
        label_matrix(large['ann_files']['train']))


def test_cooccurrence_and_empty_images(tmp_path):
    info = make_demo_dataset(
        str(tmp_path), num_train=400, num_val=0, image_size=16, seed=3)
    labels = label_matrix(info['ann_files']['train'])
    n = len(labels)

    # Empty images are listed in ``images`` with no annotation.
    num_empty = int((labels.sum(1) == 0).sum())
    assert num_empty == info['num_empty_images']['train']
    assert 0 < num_empty < 0.2 * n
    assert labels.sum(1).max() <= 4

    # Every class occurs, none in most images.
    freq = labels.mean(0)
    assert (freq > 0.03).all() and (freq < 0.5).all()

    # Lift P(a, b) / (P(a) P(b)): 1 under independence. Scene structure
    # should push some pair well above that, and with enough support.
    lifts = []
    for i, j in itertools.combinations(range(labels.shape[1]), 2):
        joint = (labels[:, i] & labels[:, j]).sum()
        if joint >= 10:
            lifts.append(joint * n / (labels[:, i].sum() * labels[:, j].sum()))
    assert max(lifts) > 2.0


def test_interrupted_run_leaves_no_annotations(tmp_path, monkeypatch):
    root = str(tmp_path)
    make_demo_dataset(root, num_train=3, num_val=2, image_size=32)
    original = synthetic._generate_split

    def fail_on_val(img_dir, split, *args):
        if split == 'val':
            raise KeyboardInterrupt
        return original(img_dir, split, *args)

    monkeypatch.setattr(synthetic, '_generate_split', fail_on_val)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(root, num_train=3, num_val=2, image_size=32)
    # Even the train annotations of the earlier, complete run are gone.
    assert os.listdir(osp.join(root, 'annotations')) == []


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        make_demo_dataset(str(tmp_path), image_size=8)
    with pytest.raises(ValueError):
        make_demo_dataset(str(tmp_path), num_train=-1)
