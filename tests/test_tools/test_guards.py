"""The tools refuse bad configs, checkpoints and resumes with a clear
message (no traceback) before any training or evaluation work is done."""
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch

import sarb_mm  # noqa: F401  (checkpoint allowlist)
from .tiny import read_scalars, run_tool, tiny_options

SARB = 'configs/sarb_r18_demo_p10.py'


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('demo_guards'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_root):
    work_dir = str(tmp_path_factory.mktemp('trained'))
    run_tool(
        ['tools/train.py', SARB, '--work-dir', work_dir, '--cfg-options'] +
        tiny_options(demo_root, epochs=2))
    return work_dir


def _refused(args, match):
    proc = run_tool(args, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert match in proc.stderr, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'Epoch(train)' not in output and 'Epoch(test)' not in output
    return proc


@pytest.mark.slow
def test_start_up_errors(tmp_path, demo_root):
    opts = tiny_options(demo_root, epochs=1)
    train = ['tools/train.py', SARB, '--work-dir', str(tmp_path / 'w')]
    _refused(train + ['--cfg-options'] + opts + ['trian_cfg.max_epochs=50'],
             "Did you mean 'train_cfg'?")
    _refused(
        train + ['--cfg-options'] + opts +
        ['default_hooks.checkpoint.intervl=1'],
        "unknown argument 'intervl'. Did you mean 'interval'?")
    _refused(train + ['--cfg-options', 'train_cfg.max_epochs'],
             'expected KEY=VALUE')
    broken = tmp_path / 'broken.py'
    broken.write_text(f"_base_ = '{osp.abspath(SARB)}'\n"
                      "model = dict(\n  head=dict(num_classes=12)\n")
    _refused(['tools/train.py', str(broken)],
             f'Syntax error in config {broken}, line 2')
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    _refused([
        'tools/train.py', SARB, '--work-dir',
        str(blocker / 'w'), '--cfg-options'
    ] + opts, 'Cannot write to the work dir')
    # A nested typo that only the class itself can tell.
    _refused(train + ['--cfg-options'] + opts + ['train_cfg.max_epoch=2'],
             "unexpected keyword argument 'max_epoch'")
    head_lr = tmp_path / 'head_lr.py'
    head_lr.write_text(f"_base_ = '{osp.abspath(SARB)}'\n"
                       "optim_wrapper = dict(paramwise_cfg=dict(\n"
                       "    custom_keys={'hed.': dict(lr_mult=10.0)}))\n")
    _refused([
        'tools/train.py',
        str(head_lr), '--work-dir',
        str(tmp_path / 'w'), '--cfg-options'
    ] + opts, "custom_keys['hed.'] matches no parameter name")


@pytest.mark.slow
def test_evaluation_loads_strictly(tmp_path, demo_root, trained):
    checkpoint = osp.join(trained, 'epoch_2.pth')
    opts = tiny_options(demo_root, epochs=2)
    test = ['tools/test.py', SARB]
    other_model = opts + ['model.head.out_channels=32']
    proc = _refused(
        test +
        [checkpoint, '--work-dir',
         str(tmp_path / 't'), '--cfg-options'] + other_model,
        'epoch_2.pth does not fit the model')
    assert 'head.fc.weight: checkpoint (64, 128) vs model (32, 128)' in \
        proc.stderr
    # A partly loaded model only on request.
    run_tool(test + [
        checkpoint, '--non-strict', '--work-dir',
        str(tmp_path / 't2'), '--cfg-options'
    ] + other_model)

    truncated = str(tmp_path / 'truncated.pth')
    with open(checkpoint, 'rb') as src, open(truncated, 'wb') as dst:
        dst.write(src.read()[:50000])
    _refused(test + [truncated, '--cfg-options'] + opts,
             f'Cannot read checkpoint {truncated}')

    state = torch.load(checkpoint)
    state['state_dict']['head.class_bias'][0] = float('nan')
    diverged = str(tmp_path / 'nan.pth')
    torch.save(state, diverged)
    _refused(
        test + [diverged, '--cfg-options'] + opts,
        "NaN or infinite values in 1 tensor(s), e.g. "
        "['head.class_bias']")

    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    _refused(
        test + [checkpoint, '--out',
                str(blocker / 'p.pkl'), '--cfg-options'] + opts,
        'is a file, not a folder')
    _refused(
        test + [checkpoint, '--out',
                str(tmp_path / 'p.txt'), '--cfg-options'] + opts,
        'use a .npz file name')


@pytest.mark.slow
def test_out_with_per_class_report(tmp_path, demo_root, trained):
    out = str(tmp_path / 'preds.pkl')
    run_tool([
        'tools/test.py', SARB,
        osp.join(trained, 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 't'), '--out', out, '--cfg-options'
    ] + tiny_options(demo_root, epochs=2) + ['test_evaluator.per_class=True'])
    metrics = read_scalars(str(tmp_path / 't'))[-1]
    per_class = [k for k in metrics if '/AP_' in k]
    assert len(per_class) == 12
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 40


@pytest.mark.slow
def test_resume_guards(tmp_path, demo_root, trained):
    opts = tiny_options(demo_root, epochs=3)
    same_dir = str(tmp_path / 'same')
    shutil.copytree(trained, same_dir)
    split_file = osp.join(same_dir, 'partial_labels.npy')
    before = open(split_file, 'rb').read()
    _refused([
        'tools/train.py', SARB, '--work-dir', same_dir, '--resume',
        '--cfg-options'
    ] + opts + ['train_dataloader.dataset.known_ratio=0.5'],
             'is never overwritten')
    assert open(split_file, 'rb').read() == before

    checkpoint = osp.join(trained, 'epoch_2.pth')
    proc = _refused([
        'tools/train.py', SARB, '--work-dir',
        str(tmp_path / 'new'), '--resume', checkpoint, '--cfg-options'
    ] + opts + ['train_dataloader.dataset.known_ratio=0.5'], 'Cannot resume')
    assert 'known_ratio=0.1, seed=0' in proc.stderr
    assert 'known_ratio=0.5, seed=0' in proc.stderr

    _refused([
        'tools/train.py', SARB, '--work-dir',
        str(tmp_path / 'other'), '--resume', checkpoint, '--cfg-options'
    ] + opts + ['model.head.out_channels=32'], 'does not fit the model')

    state = torch.load(checkpoint)
    bare = str(tmp_path / 'bare.pth')
    torch.save({'state_dict': state['state_dict']}, bare)
    _refused([
        'tools/train.py', SARB, '--work-dir',
        str(tmp_path / 'bare'), '--resume', bare, '--cfg-options'
    ] + opts, 'has no training state')
    prefixed = str(tmp_path / 'prefixed.pth')
    torch.save(
        {
            'state_dict': {
                f'model.{k}': v
                for k, v in state['state_dict'].items()
            }
        }, prefixed)
    _refused([
        'tools/train.py', SARB, '--work-dir',
        str(tmp_path / 'ft'), '--cfg-options'
    ] + opts + [f'load_from={prefixed}'], 'training would start from scratch')


@pytest.mark.slow
def test_auto_resume_skips_a_corrupt_newest_checkpoint(tmp_path, demo_root,
                                                       trained):
    work_dir = str(tmp_path / 'crashed')
    shutil.copytree(trained, work_dir)
    newest = osp.join(work_dir, 'epoch_2.pth')
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(newest)
    with open(newest, 'r+b') as f:
        f.truncate(4096)  # killed while saving
    proc = run_tool([
        'tools/train.py', SARB, '--work-dir', work_dir, '--resume',
        '--cfg-options'
    ] + tiny_options(demo_root, epochs=3))
    output = proc.stdout + proc.stderr
    assert 'Auto-resume skips a checkpoint' in output
    assert 'resumed epoch: 1' in output
    resumed = torch.load(osp.join(work_dir, 'epoch_3.pth'))
    assert resumed['meta']['epoch'] == 3
    assert resumed['meta']['partial_labels']['source'] == (
        'known_ratio=0.1, seed=0')
    np.testing.assert_array_equal(
        np.load(osp.join(work_dir, 'partial_labels.npy')),
        np.load(osp.join(trained, 'partial_labels.npy')))
