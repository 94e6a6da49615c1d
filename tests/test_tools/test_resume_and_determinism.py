"""Interrupted-and-resumed runs and repeated runs give identical results."""
import os.path as osp

import pytest
import torch

import sarb_mm  # noqa: F401  (checkpoint allowlist)
from .tiny import read_scalars, run_tool, tiny_options

pytestmark = pytest.mark.slow
CONFIG = 'configs/sarb_r18_demo_p10.py'


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('demo_resume'))


def _train(work_dir, demo_root, extra=(), config=CONFIG, check=True):
    return run_tool(
        ['tools/train.py', config, '--work-dir', work_dir] + list(extra) +
        ['--cfg-options'] + tiny_options(demo_root, epochs=3, num_train=48) +
        # prototypes at epochs 0 and 2 only: a resume at epoch 1
        # must bring them back from the checkpoint; augmentation
        # in 2 worker processes, seeded per epoch.
        ['custom_hooks.2.interval=2', 'train_dataloader.num_workers=2'],
        check=check)


def _state(path):
    return torch.load(path, map_location='cpu')


def _assert_same_state(a, b):
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, demo_root):
    work_dir = str(tmp_path_factory.mktemp('full'))
    _train(work_dir, demo_root)
    return work_dir


def test_resume_restores_everything(tmp_path, demo_root, uninterrupted):
    work_dir = str(tmp_path / 'resumed')
    crashing = tmp_path / 'crashing.py'
    crashing.write_text(
        f"_base_ = '{osp.abspath(CONFIG)}'\n"
        "custom_imports = dict(imports=['sarb_mm', "
        "'tests.test_tools.interrupt_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PartialLabelHook'), "
        "dict(type='EpochSeedHook'), dict(type='PrototypeHook', interval=2), "
        "dict(type='InterruptAfterEpochHook', epoch=1)]\n")
    proc = _train(work_dir, demo_root, config=str(crashing), check=False)
    assert proc.returncode != 0 and 'simulated crash' in proc.stderr
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    stopped = _state(osp.join(work_dir, 'epoch_1.pth'))
    assert stopped['state_dict']['head.prototype_mask'].any()
    resumed_log = _train(work_dir, demo_root, extra=['--resume'])
    output = resumed_log.stdout + resumed_log.stderr
    assert 'Epoch 1: prototypes' not in output  # restored, not recomputed
    assert 'Epoch 2: prototypes' in output

    full = _state(osp.join(uninterrupted, 'epoch_3.pth'))
    resumed = _state(osp.join(work_dir, 'epoch_3.pth'))
    assert resumed['meta']['epoch'] == 3
    _assert_same_state(full, resumed)
    for group_full, group_resumed in zip(
            full['optimizer']['state'].values(),
            resumed['optimizer']['state'].values()):
        for key in group_full:
            assert torch.equal(group_full[key], group_resumed[key])
    assert full['param_schedulers'] == resumed['param_schedulers']
    metrics_full = read_scalars(uninterrupted)[-1]
    metrics_resumed = read_scalars(work_dir)[-1]
    assert metrics_full['interp-multi-label/mAP'] == metrics_resumed[
        'interp-multi-label/mAP']


def test_same_seed_twice_is_identical(tmp_path, demo_root, uninterrupted):
    work_dir = str(tmp_path / 'again')
    _train(work_dir, demo_root)
    _assert_same_state(
        _state(osp.join(uninterrupted, 'epoch_3.pth')),
        _state(osp.join(work_dir, 'epoch_3.pth')))
    keys = [k for k in read_scalars(work_dir)[-1] if 'multi-label' in k]
    assert keys
    for key in keys:
        assert read_scalars(work_dir)[-1][key] == read_scalars(
            uninterrupted)[-1][key]
