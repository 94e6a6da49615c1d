"""End to end: SST, HST and DSRB train on the demo with tools/train.py,
their pseudo labels or blending switch on at their epoch, their
data-derived state (SST's feature bank, HST's prototypes and learnable
margins, DSRB's quadrant prototypes and alpha / beta) is saved and resumed
exactly, tools/test.py reads the checkpoint."""
import json
import os.path as osp
import re

import pytest
import torch

import sarb_mm  # noqa: F401 (allowlists what mmengine checkpoints hold)
from sarb_mm.datasets.synthetic import DEMO_CATEGORIES
from .tiny import read_scalars, run_tool, tiny_options

SHARED = [
    'model.neck.in_channels=128', 'model.neck.feat_channels=64',
    'model.neck.attn_channels=32', 'model.neck.embed_dims=16',
    'model.head.in_channels=64', 'model.head.out_channels=64'
]
PAIR_BRANCH = [
    'model.head.pair_channels=16', 'model.head.pseudo_label_epoch=1'
]
METHODS = dict(
    sst=dict(
        config='configs/sst_r18_demo_p10.py',
        hook="dict(type='LabelGraphHook')",
        options=PAIR_BRANCH + [
            'model.head.bank_size=8', 'model.head.initial_margin=0.6',
            'model.head.final_margin=0.5'
        ],
        ramped_losses=('loss_pair', 'loss_con'),
        transfer_losses=('loss_intra', 'loss_inter')),
    hst=dict(
        config='configs/hst_r18_demo_p10.py',
        hook="dict(type='PrototypeHook', interval=1)",
        options=PAIR_BRANCH + [
            'model.head.num_prototypes=3', 'model.head.intra_margin=0.6',
            'model.head.inter_margin=0.3', 'custom_hooks.2.interval=1'
        ],
        ramped_losses=('loss_pair', 'loss_con'),
        transfer_losses=('loss_intra_cls', 'loss_inter_cls', 'loss_intra',
                         'loss_inter', 'loss_proto')),
    dsrb=dict(
        config='configs/dsrb_r18_demo_p10.py',
        hook="dict(type='QuadrantPrototypeHook', interval=1)",
        options=[
            'model.head.blend_start_epoch=1', 'custom_hooks.2.interval=1'
        ],
        ramped_losses=('loss_con', ),
        transfer_losses=('loss_ilrb', 'loss_plrb')))


def method_options(method, demo_root, epochs=3):
    opts = [
        o for o in tiny_options(demo_root, sarb=False, epochs=epochs)
        if not o.startswith('model.head.')
    ]
    return opts + SHARED + METHODS[method]['options']


@pytest.fixture(scope='module', params=sorted(METHODS))
def trained(request, tmp_path_factory):
    method = request.param
    root = tmp_path_factory.mktemp(method)
    demo_root, work_dir = str(root / 'demo'), str(root / 'work')
    run_tool([
        'tools/train.py', METHODS[method]['config'], '--work-dir', work_dir,
        '--cfg-options'
    ] + method_options(method, demo_root))
    return method, demo_root, work_dir


@pytest.mark.slow
def test_trains_and_tests(tmp_path, trained):
    method, demo_root, work_dir = trained
    train = [s for s in read_scalars(work_dir) if 'loss' in s]
    assert len(train) == 12  # 64 images / batch 16 x 3 epochs
    transfer = METHODS[method]['transfer_losses']
    ramped = METHODS[method]['ramped_losses']
    for key in ('loss_cls', ) + ramped + transfer:
        assert all(key in s for s in train), key
    # Pseudo labels (blending) from epoch 1 on; the pair and contrastive
    # terms ramp up over epoch 0 (0 at its first iteration).
    assert all(s[key] == 0 for s in train[:4] for key in transfer)
    for key in transfer:
        assert any(s[key] > 0 for s in train[4:]), key
    assert all(train[0][key] == 0 for key in ramped)
    assert train[-1]['loss_cls'] < train[0]['loss_cls']

    checkpoint = osp.join(work_dir, 'epoch_3.pth')
    state = torch.load(
        checkpoint, map_location='cpu', weights_only=True)['state_dict']
    if method == 'sst':
        bank = state['head.feature_bank']
        assert bank.shape == (12, 8, 64) and bank.abs().sum() > 0
        assert torch.count_nonzero(bank.abs().sum(-1)) > 12  # several/class
    elif method == 'dsrb':
        # alpha and beta idle in epoch 0, then trained by the blends.
        for key in ('alpha', 'beta'):
            assert all(s[key] == pytest.approx(0.5) for s in train[:5])
            assert state[f'head.{key}'] != pytest.approx(0.5, abs=1e-6)
        assert state['head.prototypes'].shape == (12, 4, 64)
        mask = state['head.prototype_mask']
        assert mask.any() and not state['head.prototypes'][~mask].any()
        # Quadrants differ from their class mean where the class peaks in
        # several of them.
        spread = (state['head.prototypes'] -
                  state['head.prototypes'].mean(1, keepdim=True)).abs()
        assert spread[mask].amax() > 0
    else:
        # Margins idle in epoch 0 (no gradient, so weight decay leaves them
        # too), then trained by the pseudo-label BCE.
        for key, start in (('intra_margin', 0.6), ('inter_margin', 0.3)):
            assert all(s[key] == pytest.approx(start) for s in train[:5])
            assert state[f'head.{key}'] != pytest.approx(start, abs=1e-6)
        assert state['head.prototypes'].shape == (12, 3, 64)
        # Classes without a known positive in the 64 images have none.
        mask = state['head.prototype_mask']
        assert mask.any() and not state['head.prototypes'][~mask].any()

    test_dir = str(tmp_path / 'test')
    run_tool([
        'tools/test.py', METHODS[method]['config'], checkpoint, '--work-dir',
        test_dir, '--cfg-options'
    ] + method_options(method, demo_root))
    metric = read_scalars(test_dir)[-1]['interp-multi-label/mAP']
    assert 0 < metric <= 100


@pytest.mark.slow
def test_resumes_exactly_with_its_state(tmp_path, trained):
    method, demo_root, full_dir = trained
    config = METHODS[method]['config']
    work_dir = str(tmp_path / 'resumed')
    crashing = tmp_path / 'crashing.py'
    crashing.write_text(
        f"_base_ = '{osp.abspath(config)}'\n"
        "custom_imports = dict(imports=['sarb_mm', "
        "'tests.test_tools.interrupt_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PartialLabelHook'), "
        f"dict(type='EpochSeedHook'), {METHODS[method]['hook']}, "
        "dict(type='InterruptAfterEpochHook', epoch=1)]\n")
    options = ['--cfg-options'] + method_options(method, demo_root)
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


@pytest.mark.slow
def test_inference_and_attention_pictures(tmp_path, trained):
    """tools/infer.py and tools/visualize_attention.py on the checkpoint,
    with the config tools/train.py dumped (as a user would run them)."""
    method, demo_root, work_dir = trained
    config = osp.join(work_dir, osp.basename(METHODS[method]['config']))
    checkpoint = osp.join(work_dir, 'epoch_3.pth')
    image = osp.join(demo_root, 'val', 'val_000001.jpg')
    out = str(tmp_path / 'results.json')
    run_tool([
        'tools/infer.py', config, checkpoint, image, '--out', out, '--device',
        'cpu'
    ])
    with open(out) as f:
        record, = json.load(f)
    assert sorted(record['scores']) == sorted(DEMO_CATEGORIES)

    figure = str(tmp_path / 'attention.png')
    proc = run_tool([
        'tools/visualize_attention.py', config, checkpoint, image, '--out',
        figure, '--topk', '2', '--device', 'cpu'
    ])
    assert f'Saved the attention figure to {figure}' in proc.stdout
    assert osp.getsize(figure) > 1000
    # The attention tool's forward pass and the inferencer's agree on the
    # scores of the classes it shows.
    shown = dict(re.findall(r'^(\w+): (\d\.\d{4})$', proc.stdout, re.M))
    assert len(shown) == 2
    for name, score in shown.items():
        assert record['scores'][name] == pytest.approx(float(score), abs=1e-4)
