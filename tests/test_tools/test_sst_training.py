"""End to end: SST trains on the demo with tools/train.py, its pseudo labels
switch on at their epoch, its feature bank is saved, tools/test.py reads it."""
import os.path as osp

import pytest
import torch

import sarb_mm  # noqa: F401 (allowlists what mmengine checkpoints hold)
from .tiny import read_scalars, run_tool, tiny_options

CONFIG = 'configs/sst_r18_demo_p10.py'


def sst_options(demo_root, epochs=3):
    opts = [
        o for o in tiny_options(demo_root, sarb=False, epochs=epochs)
        if not o.startswith('model.head.')
    ]
    return opts + [
        'model.neck.in_channels=128', 'model.neck.feat_channels=64',
        'model.neck.attn_channels=32', 'model.neck.embed_dims=16',
        'model.head.in_channels=64', 'model.head.out_channels=64',
        'model.head.pair_channels=16', 'model.head.pseudo_label_epoch=1',
        'model.head.bank_size=8', 'model.head.initial_margin=0.6',
        'model.head.final_margin=0.5'
    ]


@pytest.fixture(scope='module')
def sst_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('sst')
    demo_root, work_dir = str(root / 'demo'), str(root / 'work')
    run_tool(
        ['tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options'] +
        sst_options(demo_root))
    return demo_root, work_dir


@pytest.mark.slow
def test_sst_trains_and_tests(tmp_path, sst_run):
    demo_root, work_dir = sst_run
    train = [s for s in read_scalars(work_dir) if 'loss' in s]
    assert len(train) == 12  # 64 images / batch 16 x 3 epochs
    for key in ('loss_cls', 'loss_intra', 'loss_inter', 'loss_pair',
                'loss_con'):
        assert all(key in s for s in train), key
    # Pseudo labels from epoch 1 on; the pair and contrastive terms ramp up
    # over epoch 0 (0 at its first iteration).
    assert all(s['loss_intra'] == s['loss_inter'] == 0 for s in train[:4])
    assert any(s['loss_intra'] > 0 for s in train[4:])
    assert any(s['loss_inter'] > 0 for s in train[4:])
    assert train[0]['loss_pair'] == train[0]['loss_con'] == 0
    assert train[-1]['loss_cls'] < train[0]['loss_cls']

    checkpoint = osp.join(work_dir, 'epoch_3.pth')
    state = torch.load(
        checkpoint, map_location='cpu', weights_only=True)['state_dict']
    bank = state['head.feature_bank']
    assert bank.shape == (12, 8, 64) and bank.abs().sum() > 0
    assert torch.count_nonzero(bank.abs().sum(-1)) > 12  # several per class

    test_dir = str(tmp_path / 'test')
    run_tool([
        'tools/test.py', CONFIG, checkpoint, '--work-dir', test_dir,
        '--cfg-options'
    ] + sst_options(demo_root))
    metric = read_scalars(test_dir)[-1]['interp-multi-label/mAP']
    assert 0 < metric <= 100


@pytest.mark.slow
def test_sst_resumes_exactly_with_its_bank(tmp_path, sst_run):
    demo_root, full_dir = sst_run
    work_dir = str(tmp_path / 'resumed')
    crashing = tmp_path / 'crashing.py'
    crashing.write_text(
        f"_base_ = '{osp.abspath(CONFIG)}'\n"
        "custom_imports = dict(imports=['sarb_mm', "
        "'tests.test_tools.interrupt_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PartialLabelHook'), "
        "dict(type='EpochSeedHook'), dict(type='LabelGraphHook'), "
        "dict(type='InterruptAfterEpochHook', epoch=1)]\n")
    options = ['--cfg-options'] + sst_options(demo_root)
    proc = run_tool(
        ['tools/train.py',
         str(crashing), '--work-dir', work_dir] + options,
        check=False)
    assert proc.returncode != 0 and 'simulated crash' in proc.stderr
    run_tool(
        ['tools/train.py',
         str(crashing), '--work-dir', work_dir, '--resume'] + options)
    full, resumed = (
        torch.load(
            osp.join(d, 'epoch_3.pth'), map_location='cpu',
            weights_only=True)['state_dict'] for d in (full_dir, work_dir))
    assert full.keys() == resumed.keys()
    for key, value in full.items():
        assert torch.equal(value, resumed[key]), key
