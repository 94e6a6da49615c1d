"""Checkpoint reading and checking: clear errors, never a partial load."""
import errno
import os
import os.path as osp
import time
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

import sarb_mm  # noqa: F401
from sarb_mm.engine import CheckedRunner
from sarb_mm.engine.checkpoints import (check_checkpoint_fits,
                                        check_checkpoint_overlaps,
                                        find_resumable_checkpoint,
                                        read_checkpoint)
from sarb_mm.utils.errors import InvalidInputError
from tests.tiny_sarb import build_tiny_sarb


def _save(path, model, epoch=1):
    torch.save(
        dict(meta=dict(epoch=epoch), state_dict=model.state_dict()), path)
    return str(path)


def test_unreadable_checkpoints_are_named(tmp_path):
    good = _save(tmp_path / 'good.pth', build_tiny_sarb(3))
    assert set(read_checkpoint(good)) == {'meta', 'state_dict'}
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(good, 'rb').read()[:2000])
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    for path, match in ((empty, 'is empty'), (truncated, 'truncated'),
                        (text, 'truncated, corrupt or not'),
                        (tmp_path / 'nope.pth', 'does not exist')):
        with pytest.raises(InvalidInputError, match=match) as err:
            read_checkpoint(str(path))
        assert str(path) in str(err.value)


def test_checkpoint_of_another_model_is_listed(tmp_path):
    model = build_tiny_sarb(3)
    other = _save(tmp_path / 'c5.pth', build_tiny_sarb(5))
    with pytest.raises(InvalidInputError) as err:
        check_checkpoint_fits(model, read_checkpoint(other), other)
    message = str(err.value)
    assert 'c5.pth does not fit' in message
    assert 'head.class_weight: checkpoint (5, 8) vs model (3, 8)' in message
    assert 'with another shape' in message
    with pytest.raises(InvalidInputError, match=r'\d+ key\(s\) missing'):
        check_checkpoint_fits(model, {'state_dict': {}}, 'empty-state')
    extra = dict(model.state_dict(), **{'head.extra': torch.zeros(1)})
    with pytest.raises(
            InvalidInputError,
            match=r'1 key\(s\) unexpected.*\n    head.extra'):
        check_checkpoint_fits(model, {'state_dict': extra}, 'extra')
    # DDP's module. prefix is not a mismatch.
    wrapped = {f'module.{k}': v for k, v in model.state_dict().items()}
    check_checkpoint_fits(model, {'state_dict': wrapped}, 'ddp')


def test_non_finite_weights_are_refused():
    model = build_tiny_sarb(3)
    state = model.state_dict()
    state['head.class_bias'] = state['head.class_bias'].clone()
    state['head.class_bias'][1] = float('nan')
    with pytest.raises(
            InvalidInputError, match=r"NaN or infinite.*'head.class_bias'"):
        check_checkpoint_fits(model, {'state_dict': state}, 'nan.pth')


def test_auto_resume_skips_a_corrupt_newest_checkpoint(tmp_path):
    model = build_tiny_sarb(3)
    first = _save(tmp_path / 'epoch_1.pth', model, 1)
    time.sleep(0.01)
    second = _save(tmp_path / 'epoch_2.pth', model, 2)
    (tmp_path / 'last_checkpoint').write_text(second)
    logger = MMLogger.get_instance('resume-test')
    assert find_resumable_checkpoint(str(tmp_path), logger) == second
    with open(second, 'r+b') as f:
        f.truncate(1000)  # killed while saving
    warnings = []
    logger.warning = warnings.append
    assert find_resumable_checkpoint(str(tmp_path), logger) == first
    assert len(warnings) == 1 and 'epoch_2.pth' in warnings[0]
    with open(first, 'r+b') as f:
        f.truncate(0)
    with pytest.raises(InvalidInputError, match='none of the 2'):
        find_resumable_checkpoint(str(tmp_path), logger)
    os.remove(first)
    os.remove(second)
    os.remove(tmp_path / 'last_checkpoint')
    assert find_resumable_checkpoint(str(tmp_path), logger) is None


@pytest.mark.parametrize('world_size, batch, accumulation, factor',
                         [(1, 8, 1, 1.0), (1, 4, 2, 1.0), (1, 4, 1, 0.5),
                          (2, 4, 2, 2.0), (8, 8, 1, 8.0)])
def test_auto_scale_lr_uses_the_effective_batch(world_size, batch,
                                                accumulation, factor):
    params = [torch.nn.Parameter(torch.zeros(2))]
    wrapper = OptimWrapper(
        torch.optim.Adam(params, lr=1e-5), accumulative_counts=accumulation)
    runner = SimpleNamespace(
        world_size=world_size,
        _train_dataloader=dict(batch_size=batch),
        logger=MMLogger.get_instance('scale-lr-test'))
    CheckedRunner.scale_lr(runner, wrapper,
                           dict(base_batch_size=8, enable=True))
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(1e-5 *
                                                                    factor)
    CheckedRunner.scale_lr(runner, wrapper, dict(base_batch_size=8))
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(
        1e-5 * factor)  # not enabled: unchanged


def test_copied_work_dir_never_resumes_the_original(tmp_path):
    model = build_tiny_sarb(3)
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    original.mkdir()
    copy.mkdir()
    _save(original / 'epoch_1.pth', model)
    (copy / 'last_checkpoint').write_text(str(original / 'epoch_1.pth'))
    # checkpoints kept outside the work dir (CheckpointHook out_dir): fine
    assert find_resumable_checkpoint(str(copy)) == str(original /
                                                       'epoch_1.pth')
    (copy / 'epoch_1.pth').write_bytes(b'')  # the copy's own, corrupt
    with pytest.raises(InvalidInputError, match='none of the 1'):
        find_resumable_checkpoint(str(copy))


def test_fine_tuning_checkpoint_must_overlap(tmp_path):
    model = build_tiny_sarb(3)
    logger = MMLogger.get_instance('overlap-test')
    warnings = []
    logger.warning = warnings.append
    state = model.state_dict()
    prefixed = {f'model.{k}': v for k, v in state.items()}
    with pytest.raises(InvalidInputError, match='none of its .* tensors fits'):
        check_checkpoint_overlaps(model, {'state_dict': prefixed}, 'p.pth')
    backbone = {k: v for k, v in state.items() if k.startswith('backbone.')}
    check_checkpoint_overlaps(model, {'state_dict': backbone}, 'b.pth', logger)
    assert len(warnings) == 1 and 'keep their initialisation' in warnings[0]
    backbone['backbone.conv1.weight'] = torch.full_like(
        backbone['backbone.conv1.weight'], float('inf'))
    with pytest.raises(InvalidInputError, match='NaN or infinite'):
        check_checkpoint_overlaps(model, {'state_dict': backbone}, 'b.pth')


def test_fifo_checkpoint_is_not_read(tmp_path):
    fifo = tmp_path / 'pipe.pth'
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match='not a regular file'):
        read_checkpoint(str(fifo))


def test_test_time_augmentation_wrapper_is_unwrapped(tmp_path):
    from mmpretrain.models import AverageClsScoreTTA

    from sarb_mm.engine.hooks.partial_label_hook import unwrap_model
    model = build_tiny_sarb(3)
    tta = AverageClsScoreTTA(module=model)
    assert unwrap_model(tta) is model
    # so a strict check sees the model's own keys (not 'module.' ones)
    path = _save(tmp_path / 'm.pth', model)
    check_checkpoint_fits(unwrap_model(tta), read_checkpoint(path), path)


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        return self.lin(inputs)


def test_a_full_disk_while_saving_keeps_the_last_checkpoint(
        tmp_path, monkeypatch):
    """The checkpoint is written under a temporary name and renamed: a
    write that fails half-way leaves the previous file whole (mmengine
    writes in place, which left a truncated epoch_1.pth)."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    work_dir = str(tmp_path)
    runner = CheckedRunner(
        model=_Toy(),
        work_dir=work_dir,
        default_scope='mmpretrain',  # as the configs: later tests build
        # mmpretrain models in the current scope
        train_dataloader=dict(
            batch_size=1,
            dataset=[],
            sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=1))
    save = dict(save_optimizer=False, save_param_scheduler=False)
    runner.save_checkpoint(work_dir, 'epoch_1.pth', **save)
    path = osp.join(work_dir, 'epoch_1.pth')
    saved = read_checkpoint(path)['state_dict']
    before = sorted(os.listdir(work_dir))

    def full_disk(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LocalBackend, 'put', full_disk)
    with torch.no_grad():
        runner.model.lin.weight.add_(1)
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        with pytest.raises(InvalidInputError, match='No space left'):
            runner.save_checkpoint(work_dir, name, **save)
    assert sorted(os.listdir(work_dir)) == before  # no temp, no epoch_2
    kept = read_checkpoint(path)['state_dict']
    assert all(torch.equal(kept[k], saved[k]) for k in saved)


def test_odd_checkpoint_paths_are_named_for_what_they_are(tmp_path):
    os.symlink(tmp_path / 'b.pth', tmp_path / 'a.pth')
    os.symlink(tmp_path / 'a.pth', tmp_path / 'b.pth')
    os.mkfifo(tmp_path / 'fifo.pth')
    for path, words in ((tmp_path / 'a.pth', 'is a symbolic link loop'),
                        (tmp_path / 'fifo.pth',
                         'is a FIFO'), ('/dev/zero', 'is a character device')):
        with pytest.raises(InvalidInputError) as info:
            read_checkpoint(str(path))
        assert f'Checkpoint {path} {words}' in str(info.value)
        assert 'does not exist' not in str(info.value)


def test_the_log_names_the_cpu_thread_count(tmp_path, monkeypatch):
    """CPU results depend on the thread count, so the log records it."""
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 7)
    runner = CheckedRunner(
        model=_Toy(), work_dir=str(tmp_path), default_scope='mmpretrain')
    log_file, = (
        h.baseFilename for h in runner.logger.handlers
        if hasattr(h, 'baseFilename'))
    with open(log_file) as f:
        log = f.read()
    assert 'CPU threads: 7 (torch intra-op)' in log
