"""Two processes on CPU (gloo) through tools/dist_*.sh, as users run them."""
import os
import os.path as osp

import pytest
import torch

from ..gloo import free_port
from .tiny import REPO, read_scalars, run_tool, tiny_options

pytestmark = pytest.mark.slow


def _env():
    env = dict(
        os.environ,
        PORT=str(free_port()),
        PYTHONPATH=REPO,
        OMP_NUM_THREADS='1')
    return env


def _run_script(args, timeout=900):
    import subprocess
    proc = subprocess.run(
        ['bash'] + args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env())
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('demo_dist'))


@pytest.mark.slow
def test_two_rank_sarb_training(tmp_path, demo_root):
    """Ranks keep bit-identical parameters and SARB state, alpha / beta wait
    for blending (values and optimizer state), and each rank draws its own
    random numbers."""
    config = tmp_path / 'sarb_dump.py'
    config.write_text(
        f"_base_ = '{REPO}/configs/sarb_r18_demo_p10.py'\n"
        "custom_imports = dict(imports=['sarb_mm', "
        "'tests.test_tools.dump_state_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PartialLabelHook'), "
        "dict(type='EpochSeedHook'), dict(type='PrototypeHook', interval=1), "
        "dict(type='DumpRankStateHook')]\n")
    work_dir = str(tmp_path / 'work')
    _run_script([
        'tools/dist_train.sh',
        str(config), '2', '--work-dir', work_dir, '--cfg-options'
    ] + tiny_options(demo_root, epochs=2, num_val=41) +
                ['model.head.blend_start_epoch=1'])

    def state(rank, epoch):
        return torch.load(
            osp.join(work_dir, f'rank{rank}_epoch{epoch}.pth'),
            weights_only=False)

    # Epoch 0 trains without blending: alpha and beta untouched, no state,
    # although Adam runs with weight decay.
    for rank in (0, 1):
        before = state(rank, 1)
        for name in ('alpha', 'beta'):
            assert before['params'][f'head.{name}'].item() == 0.5
            assert not before['has_optimizer_state'][name]
    states = [state(r, 2) for r in (0, 1)]
    for name in ('alpha', 'beta'):
        assert states[0]['params'][f'head.{name}'].item() != 0.5
        assert states[0]['has_optimizer_state'][name]

    buffers = [s['buffers'] for s in states]
    assert buffers[0]['prototype_mask'].any()
    assert buffers[0]['cooccurrence'].abs().sum() > 0
    for name in ('prototypes', 'prototype_mask', 'cooccurrence'):
        assert torch.equal(buffers[0][name], buffers[1][name]), name
    params = [s['params'] for s in states]
    assert params[0].keys() == params[1].keys()
    for name in params[0]:
        assert torch.equal(params[0][name], params[1][name]), name
    scalars = read_scalars(work_dir)
    assert len([s for s in scalars if 'loss' in s]) == 4  # 2 iters x 2

    # Same-position draws agree between ranks only by chance: PLRB's class
    # (~11 candidates, chance ~9%) and in-process flips (chance 50%).
    draws = [s['draws'] for s in states]
    assert len(draws[0]) == len(draws[1]) == 4
    classes = torch.stack(
        [torch.stack([d['classes'] for d in r]) for r in draws])
    flips = torch.stack([torch.stack([d['flips'] for d in r]) for r in draws])
    assert (classes[0] == classes[1]).float().mean() < 0.25
    assert 0.3 < (flips[0] == flips[1]).float().mean() < 0.7
    # ... and differ from iteration to iteration within a rank.
    assert (classes[0, 0] == classes[0, 2]).float().mean() < 0.25


TWO_RANK_METHODS = dict(
    hst=("dict(type='PrototypeHook', interval=1)", (('intra_margin', 0.6),
                                                    ('inter_margin', 0.3))),
    dsrb=("dict(type='QuadrantPrototypeHook', interval=1)", (('alpha', 0.5),
                                                             ('beta', 0.5))))


@pytest.mark.slow
@pytest.mark.parametrize('method', sorted(TWO_RANK_METHODS))
def test_two_rank_prototype_method_training(tmp_path, demo_root, method):
    """HST and DSRB on two ranks: bit-identical parameters, prototypes and
    learnable scalars (HST's margins, DSRB's alpha / beta), which wait for
    the pseudo-label / blending epoch (values and optimizer state), then
    train."""
    from .test_family_training import METHODS, method_options
    hook, scalars = TWO_RANK_METHODS[method]
    config = tmp_path / f'{method}_dump.py'
    config.write_text(
        f"_base_ = '{REPO}/{METHODS[method]['config']}'\n"
        "custom_imports = dict(imports=['sarb_mm', "
        "'tests.test_tools.dump_state_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PartialLabelHook'), "
        f"dict(type='EpochSeedHook'), {hook}, "
        "dict(type='DumpRankStateHook')]\n")
    work_dir = str(tmp_path / 'work')
    options = [
        o for o in method_options(method, demo_root, epochs=2)
        if not o.startswith('custom_hooks.')
    ]
    _run_script([
        'tools/dist_train.sh',
        str(config), '2', '--work-dir', work_dir, '--cfg-options'
    ] + options)
    states = {
        (r, e):
        torch.load(
            osp.join(work_dir, f'rank{r}_epoch{e}.pth'), weights_only=False)
        for r in (0, 1)
        for e in (1, 2)
    }
    for rank in (0, 1):
        for name, start in scalars:
            assert states[rank, 1]['params'][f'head.{name}'].item() == \
                pytest.approx(start)
            assert not states[rank, 1]['has_optimizer_state'][name]
            assert states[rank, 2]['params'][f'head.{name}'].item() != \
                pytest.approx(start, abs=1e-7)
            assert states[rank, 2]['has_optimizer_state'][name]
    first, second = states[0, 2], states[1, 2]
    assert first['buffers']['prototype_mask'].any()
    for name in ('prototypes', 'prototype_mask', 'cooccurrence'):
        assert torch.equal(first['buffers'][name],
                           second['buffers'][name]), name
    for name, value in first['params'].items():
        assert torch.equal(value, second['params'][name]), name


@pytest.mark.slow
def test_two_rank_evaluation_equals_single_process(tmp_path, demo_root):
    work_dir = str(tmp_path / 'train')
    opts = tiny_options(demo_root, sarb=False, epochs=1, num_val=41)
    run_tool([
        'tools/train.py', 'configs/baseline_r18_demo_p10.py', '--work-dir',
        work_dir, '--cfg-options'
    ] + opts)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    single = str(tmp_path / 'single')
    run_tool([
        'tools/test.py', 'configs/baseline_r18_demo_p10.py', checkpoint,
        '--work-dir', single, '--out',
        str(tmp_path / 'single.pkl'), '--cfg-options'
    ] + opts)
    double = str(tmp_path / 'double')
    _run_script([
        'tools/dist_test.sh', 'configs/baseline_r18_demo_p10.py', checkpoint,
        '2', '--work-dir', double, '--out',
        str(tmp_path / 'double.pkl'), '--cfg-options'
    ] + opts)
    one, two = read_scalars(single)[-1], read_scalars(double)[-1]
    metric_keys = [k for k in one if k.startswith('interp-multi-label/')]
    assert len(metric_keys) == 13
    for key in metric_keys:
        assert two[key] == pytest.approx(one[key], abs=1e-9), key
    import pickle
    with open(tmp_path / 'double.pkl', 'rb') as f:
        preds = pickle.load(f)
    # 41 images over 2 ranks: every image once, none twice.
    assert sorted(p['sample_idx'] for p in preds) == list(range(41))
