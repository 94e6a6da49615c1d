"""Resuming from a checkpoint saved inside an epoch: the run goes on with
the next batch and ends bit-identical to an uninterrupted one."""
import os
import os.path as osp
import shutil
import subprocess

import numpy as np
import pytest
import torch

import sarb_mm  # noqa: F401  (checkpoint allowlist)
from sarb_mm.datasets.transforms import SeedFromSample
from ..gloo import free_port
from .tiny import REPO, read_scalars, run_tool, tiny_options

CONFIG = 'configs/sarb_r18_demo_p10.py'
# 48 images in batches of 16: 3 batches per epoch on one process, 2 per
# rank on two (24 images each, the second batch of 8).
NUM_TRAIN = 48


def _options(demo_root, workers=2):
    # A checkpoint after every iteration, all kept; prototypes at the start
    # of every epoch and blending from the first, so a resume inside epoch 2
    # must keep the prototypes of its start and the model draws random
    # numbers at every batch.
    return tiny_options(
        demo_root, epochs=2, num_train=NUM_TRAIN) + [
            f'train_dataloader.num_workers={workers}',
            'default_hooks.checkpoint.by_epoch=False',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=-1',
        ]


def _train(work_dir,
           demo_root,
           extra=(),
           config=CONFIG,
           check=True,
           options=()):
    return run_tool(
        ['tools/train.py', config, '--work-dir', work_dir] + list(extra) +
        ['--cfg-options'] + _options(demo_root) + list(options),
        check=check)


def _train_two_processes(work_dir, demo_root, extra=()):
    env = dict(
        os.environ,
        PORT=str(free_port()),
        PYTHONPATH=REPO,
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work_dir] +
        list(extra) + ['--cfg-options'] + _options(demo_root, workers=1),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def _assert_same_training(full_dir, resumed_dir, last_iter):
    full = _state(osp.join(full_dir, f'iter_{last_iter}.pth'))
    resumed = _state(osp.join(resumed_dir, f'iter_{last_iter}.pth'))
    # As many iterations as the uninterrupted run, none replayed.
    assert resumed['meta']['iter'] == full['meta']['iter'] == last_iter
    assert not osp.exists(osp.join(resumed_dir, f'iter_{last_iter + 1}.pth'))
    assert full['state_dict'].keys() == resumed['state_dict'].keys()
    for key, value in full['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    assert full['state_dict']['head.prototype_mask'].any()
    for state_full, state_resumed in zip(
            full['optimizer']['state'].values(),
            resumed['optimizer']['state'].values()):
        for key in state_full:
            assert torch.equal(state_full[key], state_resumed[key]), key
    assert full['param_schedulers'] == resumed['param_schedulers']


def _losses(work_dir):
    return {
        s['iter']: s['loss']
        for s in read_scalars(work_dir) if 'loss' in s
    }


def _resume_copy(source_dir, checkpoint, work_dir):
    """A work dir holding only ``checkpoint`` of ``source_dir``: what a
    run killed right after saving it leaves (its state is all there is)."""
    os.makedirs(work_dir)
    path = osp.join(work_dir, checkpoint)
    shutil.copy(osp.join(source_dir, checkpoint), path)
    return path


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('demo_mid_epoch'))


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, demo_root):
    work_dir = str(tmp_path_factory.mktemp('full'))
    _train(work_dir, demo_root)
    return work_dir


@pytest.mark.slow
def test_crash_inside_an_epoch_then_resume(tmp_path, demo_root, uninterrupted):
    work_dir = str(tmp_path / 'resumed')
    crashing = tmp_path / 'crashing.py'
    crashing.write_text(
        f"_base_ = '{osp.abspath(CONFIG)}'\n"
        "custom_imports = dict(imports=['sarb_mm', "
        "'tests.test_tools.interrupt_iter_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='PartialLabelHook'), "
        "dict(type='EpochSeedHook'), dict(type='PrototypeHook', interval=1), "
        "dict(type='InterruptAfterIterHook', iteration=4)]\n")
    proc = _train(work_dir, demo_root, config=str(crashing), check=False)
    assert proc.returncode != 0 and 'simulated crash' in proc.stderr
    assert osp.exists(osp.join(work_dir, 'iter_4.pth'))
    assert not osp.exists(osp.join(work_dir, 'iter_5.pth'))

    resumed = _train(work_dir, demo_root, extra=['--resume'])
    output = resumed.stdout + resumed.stderr
    assert ('Resuming in the middle of epoch 2: its first 1 of 3 batches '
            'were trained before the checkpoint, so training goes on with '
            'batch 2 (iteration 5)') in output
    assert 'will not repeat the interrupted run exactly' not in output
    # Epoch 2's prototypes (made at its start) came with the checkpoint.
    assert 'Epoch 1: prototypes' not in output
    assert 'Epoch(train) [2][1/3]' not in output
    assert 'Epoch(train) [2][2/3]' in output

    _assert_same_training(uninterrupted, work_dir, last_iter=6)
    # The resumed run trained iterations 5 and 6 only, with the same losses.
    full_losses = _losses(uninterrupted)
    assert _losses(work_dir) == {i: full_losses[i] for i in (5, 6)}
    assert read_scalars(work_dir)[-1]['interp-multi-label/mAP'] == (
        read_scalars(uninterrupted)[-1]['interp-multi-label/mAP'])


@pytest.mark.slow
def test_resume_after_the_last_batch_of_an_epoch(tmp_path, demo_root,
                                                 uninterrupted):
    """An iteration checkpoint at the end of an epoch is saved before the
    epoch ends (schedulers, validation): the epoch is not trained again."""
    work_dir = str(tmp_path / 'resumed')
    checkpoint = _resume_copy(uninterrupted, 'iter_3.pth', work_dir)
    proc = _train(work_dir, demo_root, extra=['--resume', checkpoint])
    output = proc.stdout + proc.stderr
    assert 'Resuming at the end of epoch 1: all its 3 batches' in output
    assert 'Epoch 1: prototypes' in output  # epoch 2 starts as usual
    assert 'Epoch(train) [1]' not in output
    _assert_same_training(uninterrupted, work_dir, last_iter=6)
    assert sorted(_losses(work_dir)) == [4, 5, 6]


@pytest.mark.slow
def test_two_processes_resume_inside_an_epoch(tmp_path, demo_root):
    full = str(tmp_path / 'full')
    _train_two_processes(full, demo_root)
    work_dir = str(tmp_path / 'resumed')
    checkpoint = _resume_copy(full, 'iter_3.pth', work_dir)
    proc = _train_two_processes(
        work_dir, demo_root, extra=['--resume', checkpoint])
    output = proc.stdout + proc.stderr
    assert 'Resuming in the middle of epoch 2: its first 1 of 2 batches' in (
        output)
    assert 'will not repeat the interrupted run exactly' not in output
    _assert_same_training(full, work_dir, last_iter=4)
    assert sorted(_losses(work_dir)) == [4]


@pytest.mark.slow
def test_inexact_resumes_are_named(tmp_path, demo_root, uninterrupted):
    """Persistent workers keep streams the resume cannot restore: a warning
    names the key and the fix; a resume that cannot find its place in the
    epoch (other batches per epoch) is refused."""
    work_dir = str(tmp_path / 'persistent')
    checkpoint = _resume_copy(uninterrupted, 'iter_5.pth', work_dir)
    proc = _train(
        work_dir,
        demo_root,
        extra=['--resume', checkpoint],
        options=['train_dataloader.persistent_workers=True'])
    output = proc.stdout + proc.stderr
    assert 'Resuming in the middle of epoch 2: its first 2 of 3' in output
    assert ('This resume in the middle of epoch 2 will not repeat the '
            'interrupted run exactly') in output
    assert ('train_dataloader.persistent_workers=True: the augmentations '
            'come from worker streams') in output
    assert 'Set train_dataloader.persistent_workers=False' in output
    assert sorted(_losses(work_dir)) == [6]  # still no batch twice

    work_dir = str(tmp_path / 'other_batch')
    checkpoint = _resume_copy(uninterrupted, 'iter_5.pth', work_dir)
    proc = _train(
        work_dir,
        demo_root,
        extra=['--resume', checkpoint],
        options=['train_dataloader.batch_size=8'],
        check=False)
    assert proc.returncode != 0
    assert ('Cannot resume at iteration 5 in epoch 2: the checkpoint was '
            'saved with 3 batches per epoch (1 process(es), batch size 16), '
            'this run has 6 batches per epoch') in proc.stderr
    assert not osp.exists(osp.join(work_dir, 'iter_6.pth'))


def test_seed_from_sample_depends_on_the_sample_only():
    transform = SeedFromSample()

    def draws(idx, epoch):
        transform.seed, transform.epoch = 0, epoch
        assert transform(dict(sample_idx=idx)) == dict(sample_idx=idx)
        return np.random.random_sample(4), torch.rand(4)

    first = draws(3, epoch=1)
    np.random.random_sample(10)  # what other samples drew in between
    again = draws(3, epoch=1)
    assert np.array_equal(first[0], again[0])
    assert torch.equal(first[1], again[1])
    for other in (draws(4, epoch=1), draws(3, epoch=2)):
        assert not np.array_equal(first[0], other[0])
        assert not torch.equal(first[1], other[1])
    # Outside training (no seed or epoch set): the current streams.
    idle = SeedFromSample()
    state = np.random.get_state()
    idle(dict(sample_idx=3))
    assert np.array_equal(np.random.get_state()[1], state[1])
    with pytest.raises(KeyError, match='SeedFromSample needs the sample'):
        transform(dict(img_path='a.jpg'))
