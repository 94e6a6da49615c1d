"""tools/misc/check_data.py on the demo config with generated data: the
numbers against counts made here from the annotation file, a removed and
a corrupted image reported, the exit status."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest

from sarb_mm.datasets.data_check import (check_split, format_summary,
                                         split_datasets)
from sarb_mm.datasets.synthetic import make_demo_dataset
from .tiny import run_tool, tiny_options

CONFIG = 'configs/sarb_r18_demo_p10.py'
NUM_TRAIN, NUM_VAL = 64, 40


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('check_data') / 'demo')
    # The config's generation parameters (image_size 64, seed 0).
    make_demo_dataset(root, num_train=NUM_TRAIN, num_val=NUM_VAL)
    return root


def _labels(root, split):
    """(N, C) 0/1 matrix and file paths, read from the COCO JSON with a
    plain loop (classes by ascending category id, images in list order)."""
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        coco = json.load(f)
    cat_ids = sorted(c['id'] for c in coco['categories'])
    rows = {img['id']: i for i, img in enumerate(coco['images'])}
    labels = np.zeros((len(rows), len(cat_ids)), dtype=int)
    for ann in coco['annotations']:
        labels[rows[ann['image_id']], cat_ids.index(ann['category_id'])] = 1
    paths = [osp.join(root, split, img['file_name']) for img in coco['images']]
    return labels, paths


def test_counts_missing_and_corrupted_images(tmp_path, demo_root):
    root = str(tmp_path / 'demo')
    shutil.copytree(demo_root, root)  # a private copy: this test damages it
    train_labels, train_paths = _labels(root, 'train')
    val_labels, val_paths = _labels(root, 'val')
    missing = train_paths[5]
    os.remove(missing)
    corrupted = val_paths[7]
    with open(corrupted, 'rb') as f:
        head = f.read(200)
    with open(corrupted, 'wb') as f:
        f.write(head)  # a JPEG cut after its first bytes

    out = tmp_path / 'findings.json'
    proc = run_tool(
        [
            'tools/misc/check_data.py', CONFIG, '--out',
            str(out), '--cfg-options'
        ] + tiny_options(root, num_train=NUM_TRAIN, num_val=NUM_VAL),
        check=False)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f'Missing image files: 1\n  {missing}\n' in proc.stdout
    assert 'Unreadable images: 1\n  Cannot decode image file ' \
        f'{corrupted} ' in proc.stdout
    assert ('  train: 64 images: 1 missing image file(s)\n'
            '  val: 40 images: 1 unreadable image(s)\n'
            '  test: same dataset as val\n'
            '2 problem(s) found.') in proc.stdout
    # mmengine's progress bar ran to the end for both splits.
    assert proc.stdout.count(f'{NUM_TRAIN}/{NUM_TRAIN},') == 1
    assert proc.stdout.count(f'{NUM_VAL}/{NUM_VAL},') == 1

    train, val, test = json.loads(out.read_text())
    assert (train['num_images'], val['num_images']) == (NUM_TRAIN, NUM_VAL)
    assert train['missing'] == [missing] and train['unreadable'] == []
    assert val['missing'] == [] and val['unreadable'][0][0] == corrupted
    assert test['same_as'] == 'val'
    for found, labels in ((train, train_labels), (val, val_labels)):
        np.testing.assert_array_equal(found['positives'], labels.sum(0))
        np.testing.assert_array_equal(found['negatives'],
                                      len(labels) - labels.sum(0))
        assert found['images_without_positive'] == int(
            (labels.sum(1) == 0).sum())
        assert found['classes_without_positive'] == np.flatnonzero(
            labels.sum(0) == 0).tolist()
    # The published protocol, independently: known where U < 0.1.
    known = np.random.RandomState(0).random_sample(train_labels.shape) < 0.1
    np.testing.assert_array_equal(train['known_positives'],
                                  (known & (train_labels == 1)).sum(0))
    np.testing.assert_array_equal(train['known_negatives'],
                                  (known & (train_labels == 0)).sum(0))
    np.testing.assert_array_equal(train['unknown'], (~known).sum(0))
    assert train['classes_without_known_positive'] == np.flatnonzero(
        (known & (train_labels == 1)).sum(0) == 0).tolist()
    assert train['partial_source'] == 'known_ratio=0.1, seed=0'
    # The per-class table shows the same numbers.
    name = train['classes'][0]
    row = (f'      0  {name:<14}  {train_labels[:, 0].sum():>8}  '
           f'{NUM_TRAIN - train_labels[:, 0].sum():>8}')
    assert row in proc.stdout


def test_a_clean_split_passes_and_problems_are_named(demo_root):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'val_dataloader.dataset.data_root': demo_root,
        'val_dataloader.dataset.num_train': NUM_TRAIN,
        'val_dataloader.dataset.num_val': NUM_VAL,
    })
    (split, dataset_cfg, same_as), = split_datasets(cfg, ['val'])
    assert (split, same_as) == ('val', None)
    report = check_split('val', dataset_cfg, progress=False)
    assert report.problems == [] and report.images_checked
    assert report.num_images == NUM_VAL
    np.testing.assert_array_equal(report.positives,
                                  _labels(demo_root, 'val')[0].sum(0))
    assert format_summary([report]).endswith('No problem found.')

    # Without decoding, only the files' presence is looked at.
    report = check_split('val', dataset_cfg, decode=False, progress=False)
    assert report.problems == [] and not report.decoded

    # A dataset that cannot be built is a problem with its own message.
    broken = dict(
        dataset_cfg,
        data_root=osp.join(demo_root, 'nothing'),
        type='CocoMultiLabelDataset',
        ann_file='a.json',
        data_prefix='val')
    for key in ('split', 'num_train', 'num_val', 'image_size', 'seed'):
        broken.pop(key)
    report = check_split('val', broken, progress=False)
    assert report.problems == ['the dataset cannot be built']
    assert 'COCO data_root not found' in report.error
    assert '1 problem(s) found.' in format_summary([report])
