"""Tests of the generated demo dataset (``make_demo_dataset``)."""
import filecmp
import glob
import itertools
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from sarb_mm.datasets import synthetic
from sarb_mm.datasets.synthetic import DEMO_CATEGORIES, make_demo_dataset
from tests.log_capture import collect_warnings
from tests.test_tools.tiny import run_tool

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


def drawn_label_matrix(split_idx, num, seed=0):
    """Which classes each image draws, before visibility is judged."""
    drawn = np.zeros((num, len(DEMO_CATEGORIES)), dtype=np.int64)
    for i in range(num):
        rng = np.random.default_rng([seed, split_idx, i])
        drawn[i, synthetic._sample_labels(rng)] = 1
    return drawn


def test_drawn_objects_do_not_depend_on_image_size(tmp_path):
    small = make_demo_dataset(
        str(tmp_path / 's'), num_train=60, num_val=0, image_size=32)
    large = make_demo_dataset(
        str(tmp_path / 'l'), num_train=60, num_val=0, image_size=80)
    drawn = drawn_label_matrix(0, 60)
    small_labels = label_matrix(small['ann_files']['train'])
    large_labels = label_matrix(large['ann_files']['train'])
    # Labelled objects are the visible subset of one common drawing.
    assert (small_labels <= drawn).all() and (large_labels <= drawn).all()
    assert (small_labels != large_labels).mean() < 0.02


def test_visible_fractions_by_hand():
    bottom = np.zeros((4, 4), bool)
    bottom[:2, :] = True  # 8 pixels
    middle = np.zeros((4, 4), bool)
    middle[1:3, :2] = True  # 4 pixels, 2 of them over ``bottom``
    top = np.zeros((4, 4), bool)
    top[2, 0] = True  # 1 pixel over ``middle``
    empty = np.zeros((4, 4), bool)
    assert synthetic.visible_fractions([bottom, middle, top, empty]) == \
        [6 / 8, 3 / 4, 1.0, 0.0]


def test_objects_mostly_hidden_are_not_labelled(tmp_path):
    # val_000001 draws an orange_diamond and then two blue circles that
    # cover most of it; before visibility was measured it was labelled.
    info = make_demo_dataset(str(tmp_path), num_train=0, num_val=300)
    drawn = drawn_label_matrix(1, 300)
    labels = label_matrix(info['ann_files']['val'])
    diamond = DEMO_CATEGORIES.index('orange_diamond')
    assert drawn[0, diamond] == 1 and labels[0, diamond] == 0
    assert labels[0, DEMO_CATEGORIES.index('blue_circle')] == 1
    assert (labels <= drawn).all()
    # The rule drops only a few objects: most scenes stay fully labelled.
    assert 0 < (drawn - labels).sum() < 0.05 * drawn.sum()


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


# --------------------------------------------------------------------------
# The generator never overwrites another dataset
# --------------------------------------------------------------------------


def _foreign_dataset(root):
    """Another dataset's files, at the paths the demo would write."""
    files = {
        'annotations/instances_train.json': b'{"their": "annotations"}',
        'annotations/instances_val.json': b'{"theirs": true}',
        'train/train_000001.jpg': b'their image bytes',
    }
    for rel, data in files.items():
        os.makedirs(osp.dirname(osp.join(root, rel)), exist_ok=True)
        with open(osp.join(root, rel), 'wb') as f:
            f.write(data)
    return files


def _assert_untouched(root, files):
    assert tree_files(root) == sorted(files)
    for rel, data in files.items():
        with open(osp.join(root, rel), 'rb') as f:
            assert f.read() == data


def test_refuses_a_foreign_non_empty_directory(tmp_path):
    root = str(tmp_path / 'coco')
    files = _foreign_dataset(root)
    with pytest.raises(
            FileExistsError,
            match=re.escape(repr(root)) + r'.*not empty \(2 '
            r"entries, e.g. 'annotations'\).*\.sarb_mm_demo.*new "
            r'or empty directory'):
        make_demo_dataset(root, num_train=2, num_val=1, image_size=16)
    _assert_untouched(root, files)

    # One stray file is enough to refuse.
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match="'notes.txt'"):
        make_demo_dataset(str(other), num_train=2, num_val=1, image_size=16)
    assert os.listdir(other) == ['notes.txt']

    not_dir = tmp_path / 'file'
    not_dir.write_text('x')
    with pytest.raises(NotADirectoryError, match='not a directory'):
        make_demo_dataset(str(not_dir), num_train=2, num_val=1, image_size=16)
    assert not_dir.read_text() == 'x'


def test_marker_written_first_and_regenerating_own_directory(
        tmp_path, monkeypatch):
    root = str(tmp_path / 'new' / 'demo')  # parents do not exist either
    seen = []
    original = synthetic._generate_split

    def spy(img_dir, *args):
        seen.append(sorted(os.listdir(root)))
        return original(img_dir, *args)

    monkeypatch.setattr(synthetic, '_generate_split', spy)
    make_demo_dataset(root, num_train=3, num_val=2, image_size=16, seed=1)
    assert synthetic.DEMO_MARKER in seen[0]
    first = tree_files(root)
    assert synthetic.DEMO_MARKER in first

    # A marked directory is the generator's own: it may rewrite it.
    make_demo_dataset(root, num_train=3, num_val=2, image_size=16, seed=2)
    with open(osp.join(root, 'annotations', 'instances_train.json')) as f:
        assert json.load(f)['info']['seed'] == 2

    # An empty directory is fine as well.
    empty = tmp_path / 'empty'
    empty.mkdir()
    make_demo_dataset(
        str(empty), num_train=3, num_val=2, image_size=16, seed=1)
    assert tree_files(str(empty)) == first


def test_marker_must_be_a_regular_file(tmp_path):
    root = str(tmp_path / 'coco')
    files = _foreign_dataset(root)
    os.symlink(
        osp.join(root, 'annotations', 'instances_val.json'),
        osp.join(root, synthetic.DEMO_MARKER))
    files_with_link = sorted(files) + [synthetic.DEMO_MARKER]
    with pytest.raises(FileExistsError):
        make_demo_dataset(root, num_train=2, num_val=1, image_size=16)
    assert tree_files(root) == sorted(files_with_link)


def test_demo_dataset_class_refuses_foreign_directory(tmp_path):
    from mmpretrain.registry import DATASETS
    root = str(tmp_path / 'coco')
    files = _foreign_dataset(root)
    os.remove(osp.join(root, 'annotations', 'instances_val.json'))
    del files['annotations/instances_val.json']
    with pytest.raises(FileExistsError, match=re.escape(repr(root))):
        DATASETS.build(
            dict(
                type='SyntheticCocoDataset',
                data_root=root,
                split='val',
                num_train=2,
                num_val=1,
                image_size=16))
    _assert_untouched(root, files)

    # Its own (here: empty) directory is generated once, then read.
    own = str(tmp_path / 'demo')
    ds = DATASETS.build(
        dict(
            type='SyntheticCocoDataset',
            data_root=own,
            split='val',
            num_train=2,
            num_val=3,
            image_size=16))
    assert len(ds) == 3
    assert osp.isfile(osp.join(own, synthetic.DEMO_MARKER))


def test_tool_refuses_foreign_directory(tmp_path):
    root = str(tmp_path / 'coco')
    files = _foreign_dataset(root)
    proc = run_tool([
        'tools/make_demo_dataset.py', '--out', root, '--num-train', '2',
        '--num-val', '1', '--image-size', '16'
    ],
                    check=False)
    assert proc.returncode == 1
    assert 'make_demo_dataset.py: error: Refusing to write' in proc.stderr
    assert 'Traceback' not in proc.stderr
    _assert_untouched(root, files)


def test_empty_root_means_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'project.txt').write_text('mine')
    with pytest.raises(FileExistsError, match="'project.txt'"):
        make_demo_dataset('', num_train=2, num_val=1, image_size=16)
    assert os.listdir(tmp_path) == ['project.txt']


# --------------------------------------------------------------------------
# Existing data is not regenerated; other parameters are warned about
# --------------------------------------------------------------------------


def _demo(root, split, **kwargs):
    from mmpretrain.registry import DATASETS
    params = dict(num_train=3, num_val=2, image_size=16, seed=0)
    params.update(kwargs)
    return DATASETS.build(
        dict(
            type='SyntheticCocoDataset', data_root=root, split=split,
            **params))


def test_demo_dataset_warns_when_disk_differs(tmp_path):
    root = str(tmp_path / 'demo')
    with collect_warnings() as seen:
        assert len(_demo(root, 'train')) == 3  # generated here
        assert len(_demo(root, 'val')) == 2
        # Another split's count is not this split's business.
        assert len(_demo(root, 'val', num_train=500)) == 2
    assert seen == []
    before = tree_files(root)

    with collect_warnings() as seen:
        assert len(_demo(root, 'train', num_train=500)) == 3
    assert seen == [
        f'The demo dataset under {root!r} does not match what this train '
        'dataset asks for: num_train=500 requested but 3 on disk. The data '
        'on disk is used as it is (an existing demo dataset is never '
        'regenerated automatically). To regenerate it with the requested '
        f'values, delete {root!r} or use another data_root; otherwise set '
        'num_train to the values on disk. In a config, define num_train, '
        'num_val, image_size and seed once for both the train and the val '
        'dataset.'
    ]
    with collect_warnings() as seen:
        assert len(_demo(root, 'val', num_val=4, image_size=32, seed=7)) == 2
    assert len(seen) == 1
    assert ('num_val=4 requested but 2 on disk, image_size=32 requested but '
            '16 on disk, seed=7 requested but 0 on disk.') in seen[0]
    assert 'set num_val, image_size, seed to the values on disk' in seen[0]
    assert tree_files(root) == before  # nothing was regenerated


def _demo_configs():
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    paths = sorted(glob.glob(osp.join(repo, 'configs', '*_demo_*.py')))
    assert paths
    return [Config.fromfile(path) for path in paths]


GENERATION_KEYS = ('num_train', 'num_val', 'image_size', 'seed')


def test_demo_configs_give_every_dataset_the_same_parameters():
    for cfg in _demo_configs():
        expected = dict(
            num_train=cfg.num_train,
            num_val=cfg.num_val,
            image_size=cfg.image_size,
            seed=cfg.demo_seed)
        for dataset in (cfg.train_dataloader.dataset.dataset,
                        cfg.val_dataloader.dataset,
                        cfg.test_dataloader.dataset):
            assert dataset.type == 'SyntheticCocoDataset'
            assert {k: dataset[k] for k in GENERATION_KEYS} == expected


def test_tiny_options_build_without_warnings(tmp_path):
    from mmengine.config import DictAction
    from mmpretrain.registry import DATASETS

    from tests.test_tools.tiny import tiny_options
    root = str(tmp_path / 'demo')
    for cfg in _demo_configs():
        options = dict(
            option.split('=', 1)
            for option in tiny_options(root, num_train=4, num_val=3)
            if '.dataset.' in option)  # the model options are not needed
        cfg.merge_from_dict({
            key: DictAction._parse_iterable(value)
            for key, value in options.items()
        })
        datasets = (cfg.train_dataloader.dataset.dataset,
                    cfg.val_dataloader.dataset, cfg.test_dataloader.dataset)
        for dataset in datasets:
            assert {
                k: dataset.get(k)
                for k in GENERATION_KEYS
            } == dict(
                num_train=4, num_val=3, image_size=64, seed=0)
            dataset.pipeline = []  # not run here
        cfg.train_dataloader.dataset.pipeline = []  # the wrapper's
        with collect_warnings() as seen:
            train = DATASETS.build(cfg.train_dataloader.dataset)
            val = DATASETS.build(cfg.val_dataloader.dataset)
            test = DATASETS.build(cfg.test_dataloader.dataset)
        assert (len(train), len(val), len(test)) == (4, 3, 3)
        # Only the split's known-positive report, never the demo's.
        assert not [m for m in seen if 'demo dataset' in m], seen
