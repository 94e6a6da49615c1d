"""End to end: tools/train.py then tools/test.py on generated demo data."""
import glob
import os
import os.path as osp
import pickle

import mmpretrain
import numpy as np
import pytest

from sarb_mm.datasets import make_partial_labels
from sarb_mm.datasets.partial_wrapper import full_label_matrix
from .tiny import read_scalars, run_tool, tiny_options

MMPRETRAIN_TOOLS = osp.join(
    osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'analysis_tools')


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('demo'))


@pytest.mark.parametrize('config, sarb',
                         [('configs/baseline_r18_demo_p10.py', False),
                          ('configs/sarb_r18_demo_p10.py', True)])
@pytest.mark.slow
def test_train_then_test(tmp_path, demo_root, config, sarb):
    work_dir = str(tmp_path / 'work')
    # SARB blends from epoch 1 here, so epoch 0 trains without blending.
    run_tool(
        ['tools/train.py', config, '--work-dir', work_dir, '--cfg-options'] +
        tiny_options(demo_root, sarb=sarb) +
        (['model.head.blend_start_epoch=1'] if sarb else []))

    scalars = read_scalars(work_dir)
    train = [s for s in scalars if 'loss' in s]
    assert len(train) == 12  # 64 images / batch 16 x 3 epochs
    first, last = train[0], train[-1]
    assert last['loss_cls' if sarb else 'loss'] < first[
        'loss_cls' if sarb else 'loss']
    if sarb:
        # Every loss key from the first iteration on, 0 before blending;
        # alpha and beta wait for blending.
        for key in ('loss_ilrb', 'loss_plrb', 'loss_con'):
            assert key in first and key in last
        assert first['loss_ilrb'] == first['loss_plrb'] == 0
        assert train[3]['alpha'] == train[3]['beta'] == 0.5
        assert last['loss_ilrb'] > 0 and last['loss_plrb'] > 0
        assert last['alpha'] != 0.5
        # mmpretrain's own log tool plots the blending curves.
        curve = str(tmp_path / 'loss_ilrb.png')
        log = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))[0]
        run_tool([
            osp.join(MMPRETRAIN_TOOLS, 'analyze_logs.py'), 'plot_curve', log,
            '--keys', 'loss_ilrb', 'loss_plrb', '--out', curve
        ])
        assert os.path.getsize(curve) > 1000
    val = [s for s in scalars if 'interp-multi-label/mAP' in s][-1]

    # The split the run used is on disk and is the published protocol's.
    saved = np.load(osp.join(work_dir, 'partial_labels.npy'))
    from mmpretrain.registry import DATASETS
    full = full_label_matrix(
        DATASETS.build(
            dict(
                type='SyntheticCocoDataset',
                data_root=demo_root,
                split='train',
                num_train=64,
                num_val=40)))
    np.testing.assert_array_equal(saved, make_partial_labels(full, 0.1))

    out = str(tmp_path / 'preds.pkl')
    proc = run_tool([
        'tools/test.py', config,
        osp.join(work_dir, 'epoch_3.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out', out, '--cfg-options'
    ] + tiny_options(demo_root, sarb=sarb))
    assert 'interp-multi-label/mAP' in proc.stdout + proc.stderr
    test_scalars = read_scalars(str(tmp_path / 'test'))
    assert test_scalars[-1]['interp-multi-label/mAP'] == pytest.approx(
        val['interp-multi-label/mAP'])
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 40
    assert predictions[0]['pred_score'].shape == (12, )

    # mmpretrain's inferencer runs the trained model on an image file.
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(
        model=osp.join(work_dir, osp.basename(config)),
        pretrained=osp.join(work_dir, 'epoch_3.pth'),
        device='cpu')
    image = osp.join(demo_root, 'val',
                     sorted(os.listdir(osp.join(demo_root, 'val')))[0])
    result = inferencer(image)[0]
    assert result['pred_scores'].shape == (12, )
    assert ((result['pred_scores'] > 0) & (result['pred_scores'] < 1)).all()


def test_class_count_mismatch_stops_before_training(tmp_path, demo_root):
    work_dir = str(tmp_path / 'work')
    proc = run_tool(
        [
            'tools/train.py', 'configs/baseline_r18_demo_p10.py', '--work-dir',
            work_dir, '--cfg-options'
        ] + tiny_options(demo_root, sarb=False) + ['model.head.num_classes=7'],
        check=False)
    assert proc.returncode != 0
    assert 'has 12 classes but the model head predicts 7' in proc.stderr
    assert 'Epoch(train)' not in proc.stdout + proc.stderr
