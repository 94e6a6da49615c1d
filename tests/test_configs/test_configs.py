"""Every shipped config parses, says what its name says, and builds."""
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import sarb_mm  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The demo-jsonl and -native configs train on natively partial labels (no
# hiding wrapper); tests/test_tools/test_jsonl_demo.py and
# test_native_configs below cover them.
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*.py'))
    if not p.endswith(('-jsonl.py', '-native.py')))
NUM_CLASSES = dict(coco=80, voc=20, vg=200, demo=12)
DATASET_TYPES = dict(
    coco='CocoMultiLabelDataset',
    voc='VOC2007MultiLabelDataset',
    vg='VG200MultiLabelDataset',
    demo='SyntheticCocoDataset')
TINY_BACKBONE = dict(
    type='ResNet',
    depth=18,
    base_channels=8,
    stem_channels=8,
    out_indices=(3, ))

# Model configs already built: the leaves of one method and dataset differ
# only in the known proportion, so each distinct model is built once.
_BUILT_MODELS = set()


def test_every_paper_config_exists():
    names = {osp.basename(p) for p in CONFIGS}
    for method in ('sarb', 'sst', 'hst', 'dsrb'):
        for dataset in ('coco', 'voc', 'vg'):
            for p in range(10, 100, 10):
                assert f'{method}_r101_{dataset}_p{p}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds(path, tmp_path):
    name = osp.basename(path)
    match = re.match(
        r'(sarb|sst|hst|dsrb|baseline)_([\w-]+)_(coco|voc|vg|demo)_p(\d+)',
        name)
    assert match, f'{name} does not follow the naming scheme'
    method, backbone, dataset, percent = match.groups()
    cfg = Config.fromfile(path)
    model_key = repr(cfg.model.to_dict())

    train_set = cfg.train_dataloader.dataset
    assert train_set.type == 'PartialLabelDataset'
    assert train_set.known_ratio == pytest.approx(int(percent) / 100)
    assert train_set.dataset.type == DATASET_TYPES[dataset]
    assert cfg.val_dataloader.dataset.type == DATASET_TYPES[dataset]
    assert cfg.val_evaluator.type == 'InterpolatedMultiLabelMetric'
    num_classes = NUM_CLASSES[dataset]
    assert cfg.model.head.num_classes == num_classes
    if dataset != 'demo':  # published recipe
        # The shipped HST script trains with batch 32, the others with 8.
        assert cfg.train_dataloader.batch_size == (32
                                                   if method == 'hst' else 8)
        assert cfg.auto_scale_lr.base_batch_size == \
            cfg.train_dataloader.batch_size
        assert cfg.train_cfg.max_epochs == 20
        assert cfg.optim_wrapper.optimizer.lr == 1e-5
        if backbone in ('r101', 'convnext-t'):  # the published freezing
            assert cfg.model.backbone.frozen_stages == 3
        if backbone == 'r101' and method != 'baseline':
            # the published ResNet's final AvgPool2d(2, stride=2)
            assert cfg.model.neck.input_pool == 2
        assert cfg.model.backbone.init_cfg.type == 'Pretrained'
        # The published loader drops the last incomplete training batch;
        # every test image is evaluated.
        assert cfg.train_dataloader.drop_last is True
        assert not cfg.val_dataloader.get('drop_last', False)
        assert not cfg.test_dataloader.get('drop_last', False)
    assert cfg.runner_type == 'CheckedRunner'
    assert cfg.default_hooks.finite_loss.type == 'FiniteLossHook'

    hooks = [h.type for h in cfg.custom_hooks]
    assert 'PartialLabelHook' in hooks
    model_cfg = cfg.model
    model_cfg.backbone = dict(TINY_BACKBONE)
    if method != 'baseline':
        assert dict(
            sarb='PrototypeHook',
            sst='LabelGraphHook',
            hst='PrototypeHook',
            dsrb='QuadrantPrototypeHook')[method] in hooks
        assert model_cfg.neck.get('with_peak_quadrants', False) == (
            method == 'dsrb')
        assert model_cfg.neck.num_classes == num_classes
        vectors = model_cfg.neck.word_vectors
        if dataset != 'demo':
            assert vectors == f'data/word_vectors/{dataset}_glove_300d.npy'
            fake = tmp_path / 'vectors.npy'
            np.save(fake, np.random.rand(num_classes, 300).astype('f4'))
            model_cfg.neck.word_vectors = str(fake)
        model_cfg.neck.in_channels = 64
    else:
        model_cfg.head.in_channels = 64
    if model_key in _BUILT_MODELS:
        return
    _BUILT_MODELS.add(model_key)
    model = MODELS.build(model_cfg).eval()
    with torch.no_grad():
        scores = model(torch.rand(2, 3, 64, 64), mode='tensor')
    assert scores.shape == (2, num_classes)


@pytest.mark.parametrize('name, dataset_type, num_classes, max_images', [
    ('sarb_r101_openimages-native.py', 'OpenImagesPartialDataset', 600,
     1000000),
    ('sarb_r101_lvis-native.py', 'LVISPartialDataset', 1203, None),
])
def test_native_configs(name, dataset_type, num_classes, max_images, tmp_path):
    """The large natively partial datasets: own labels (no hiding wrapper),
    a bounded prototype pass, the model at their class count."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.dataset.type == dataset_type
        assert loader.dataset.pipeline
    assert cfg.val_evaluator.type == 'InterpolatedMultiLabelMetric'
    (hook, ) = [h for h in cfg.custom_hooks if h.type == 'PrototypeHook']
    assert hook.max_points_per_class == 1000
    assert hook.get('max_images_per_pass') == max_images
    assert cfg.model.head.num_classes == num_classes
    model_cfg = cfg.model
    model_cfg.backbone = dict(TINY_BACKBONE)
    model_cfg.neck.in_channels = 64
    fake = tmp_path / 'vectors.npy'
    np.save(fake, np.random.rand(num_classes, 300).astype('f4'))
    model_cfg.neck.word_vectors = str(fake)
    model = MODELS.build(model_cfg).eval()
    with torch.no_grad():
        scores = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert scores.shape == (1, num_classes)


def test_openimages_config_reads_a_release_layout(tmp_path):
    """The dataset settings of the OpenImages config against files laid
    out as the release names them (the boxable class list included)."""
    import shutil

    from mmpretrain.registry import DATASETS

    from ..test_datasets.test_openimages import DESCRIPTIONS, write_openimages
    write_openimages(str(tmp_path))
    ann = tmp_path / 'annotations'
    shutil.copy(ann / 'labels.csv',
                ann / 'oidv6-train-annotations-human-imagelabels.csv')
    shutil.copy(ann / 'classes.csv', ann / 'oidv6-class-descriptions.csv')
    boxable = [mid for mid, _ in DESCRIPTIONS[:3]]
    (ann / 'boxable-classes.txt').write_text('\n'.join(boxable) + '\n')
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'sarb_r101_openimages-native.py'))
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(tmp_path)
    dataset_cfg.pipeline = []
    dataset = DATASETS.build(dataset_cfg)
    assert dataset.label_names == boxable
    assert len(dataset) > 0
