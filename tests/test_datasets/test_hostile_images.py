"""Broken or unusual image files: a clear error naming the file, or a
documented conversion to 3-channel colour."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from sarb_mm.datasets import PartialLabelDataset
from .fixtures import COCO_IMAGES, write_coco

PIPELINE = [dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]


def _dataset(root, wrap):
    cfg = dict(
        type='CocoMultiLabelDataset',
        data_root=str(root),
        ann_file='annotations/instances_train2014.json',
        data_prefix='train2014',
        pipeline=PIPELINE)
    if wrap:
        return PartialLabelDataset(cfg, known_ratio=1.0)
    from mmpretrain.registry import DATASETS
    return DATASETS.build(cfg)


def _image_path(root, index=0):
    return osp.join(root, 'train2014', COCO_IMAGES[index]['file_name'])


def _rich_jpeg(path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        path, format='JPEG')


@pytest.mark.parametrize('damage', ['head', 'tail', 'garbage', 'empty'])
@pytest.mark.parametrize('wrap', [True, False])
def test_corrupt_or_truncated_jpeg_names_the_file(tmp_path, damage, wrap):
    write_coco(str(tmp_path))
    path = _image_path(str(tmp_path))
    _rich_jpeg(path)
    data = open(path, 'rb').read()
    broken = dict(head=data[:len(data) // 3], tail=data[:int(len(data) * .8)],
                  garbage=b'this is not a jpeg', empty=b'')[damage]
    with open(path, 'wb') as f:
        f.write(broken)
    dataset = _dataset(tmp_path, wrap)
    with pytest.raises(ValueError, match='Cannot decode image file .*' +
                       COCO_IMAGES[0]['file_name']):
        dataset[0]
    assert dataset[1]['inputs'].shape[0] == 3  # the others still load


@pytest.mark.parametrize('wrap', [True, False])
def test_missing_image_names_the_file(tmp_path, wrap):
    write_coco(str(tmp_path))
    os.remove(_image_path(str(tmp_path), 2))
    with pytest.raises(FileNotFoundError, match=COCO_IMAGES[2]['file_name']):
        _dataset(tmp_path, wrap)[2]


@pytest.mark.parametrize('mode, ext', [('L', 'JPEG'), ('CMYK', 'JPEG'),
                                       ('RGBA', 'PNG'), ('P', 'PNG'),
                                       ('I;16', 'PNG')])
def test_other_colour_modes_become_three_channels(tmp_path, mode, ext):
    write_coco(str(tmp_path))
    path = _image_path(str(tmp_path))
    rgb = Image.new('RGB', (10, 6), (200, 120, 40))
    image = rgb.convert('L').convert('I;16') if mode == 'I;16' else \
        rgb.convert(mode)
    image.save(path, format=ext)  # COCO names files .jpg whatever they hold
    inputs = _dataset(tmp_path, wrap=True)[0]['inputs']
    assert inputs.shape == (3, 6, 10)
    if mode in ('L', 'I;16'):
        assert (inputs[0] == inputs[1]).all() and (inputs[1] == inputs[2]).all()
