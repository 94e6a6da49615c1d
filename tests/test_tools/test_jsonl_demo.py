"""The JSON Lines demo: genuinely partial labels, from generation to a
trained and evaluated model."""
import glob
import json
import os.path as osp

import numpy as np
import pytest

from .tiny import read_scalars, run_tool, tiny_options

SARB = 'configs/sarb_r18_demo-jsonl.py'
BASELINE = 'configs/baseline_r18_demo-jsonl.py'


def _options(data_root, sarb):
    """tiny_options without the demo-dataset keys, pointed at data_root."""
    options = [
        o for o in tiny_options(data_root, sarb=sarb, epochs=2)
        if '.dataset.' not in o
    ]
    return options + [
        f'{loader}.dataset.data_root={data_root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


@pytest.fixture(scope='module')
def jsonl_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo_jsonl'))
    run_tool([
        'tools/make_demo_dataset.py', '--out', root, '--num-train', '48',
        '--num-val', '24', '--jsonl', '0.3'
    ])
    return root


def test_generated_labels_are_partial(jsonl_root):
    classes = open(osp.join(jsonl_root, 'classes.txt')).read().split()
    assert len(classes) == 12
    with open(osp.join(jsonl_root, 'train.jsonl')) as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 48
    known = np.array([len(line['pos']) + len(line['neg']) for line in lines])
    # About 30% of the 12 classes verified per image, never all of them.
    assert 0.2 < known.sum() / (48 * 12) < 0.4
    assert (known >= 1).all() and (known < 12).all()
    with open(osp.join(jsonl_root, 'val.jsonl')) as f:
        assert all(
            len(line['pos']) + len(line['neg']) == 12
            for line in map(json.loads, f))


@pytest.mark.slow
@pytest.mark.parametrize('config, sarb', [(SARB, True), (BASELINE, False)])
def test_jsonl_demo_trains_and_evaluates(jsonl_root, tmp_path, config, sarb):
    work_dir = str(tmp_path / 'work')
    run_tool(
        ['tools/train.py', config, '--work-dir', work_dir, '--cfg-options'] +
        _options(jsonl_root, sarb))
    with open(glob.glob(osp.join(work_dir, '*', '*.log'))[0]) as f:
        log = f.read()
    assert 'train.jsonl\': 48 images x 12 classes' in log
    scalars = read_scalars(work_dir)
    losses = [s['loss'] for s in scalars if 'loss' in s]
    assert len(losses) == 2 * 3 and np.isfinite(losses).all()
    val = [s for s in scalars if 'interp-multi-label/mAP' in s]
    assert len(val) == 1 and 0 < val[0]['interp-multi-label/mAP'] <= 100
    if sarb:
        # Blending ran from the known entries alone.
        assert any(s.get('loss_plrb', 0) > 0 for s in scalars)
