from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config

from sarb_mm.engine.hooks import FiniteLossHook
from sarb_mm.utils.errors import InvalidInputError
from .test_config_checks import REPO


def _outputs(loss, **terms):
    return dict(
        loss=torch.tensor(loss),
        **{
            k: torch.tensor(v)
            for k, v in terms.items()
        })


def test_finite_losses_pass():
    runner = SimpleNamespace(epoch=0, iter=3)
    FiniteLossHook().after_train_iter(runner, 3, None,
                                      _outputs(0.7, loss_cls=0.7))
    FiniteLossHook().after_train_iter(runner, 3, None, None)


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_loss_stops_the_run_naming_the_terms(bad):
    runner = SimpleNamespace(epoch=2, iter=41)
    with pytest.raises(FloatingPointError) as err:
        FiniteLossHook().after_train_iter(
            runner, 5, None,
            _outputs(bad, loss_cls=0.5, loss_ilrb=bad, alpha=0.4))
    message = str(err.value)
    assert f'became {bad}' in message
    assert 'epoch 2' in message and 'iteration 6 of the epoch' in message
    assert 'iteration 42 overall' in message
    assert f'loss_ilrb={bad}' in message and 'loss_cls=0.5' in message


def test_every_shipped_config_has_it():
    cfg = Config.fromfile(f'{REPO}/configs/sarb_r18_demo_p10.py')
    assert cfg.default_hooks.finite_loss.type == 'FiniteLossHook'
    assert cfg.runner_type == 'CheckedRunner'


class _Logger:
    """Collects warnings like runner.logger would log them."""

    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def _train(hook, losses, iters_per_epoch=50):
    """Feed a loss sequence through the hook as a Runner would; the
    warnings it logged."""
    runner = SimpleNamespace(epoch=0, iter=0, logger=_Logger())
    hook.before_train(runner)
    for step, loss in enumerate(losses):
        runner.epoch, batch_idx = divmod(step, iters_per_epoch)
        runner.iter = step
        hook.after_train_iter(runner, batch_idx, None,
                              _outputs(loss, loss_cls=loss))
    return runner.logger.warnings


def _normal_run(seed, iters=400):
    """BCE-like: from ~0.7 down to ~0.05, batch-to-batch noise of a
    factor of about 2, and a few bad batches 30x the trend."""
    rng = np.random.default_rng(seed)
    trend = 0.05 + 0.65 * np.exp(-np.arange(iters) / 80)
    losses = trend * rng.lognormal(0, 0.7, iters)
    losses[rng.choice(np.arange(20, iters), 5, replace=False)] *= 30
    return losses.tolist()


@pytest.mark.parametrize('seed', range(5))
def test_normal_training_is_not_flagged(seed):
    assert _train(FiniteLossHook(), _normal_run(seed)) == []
    # Losses that are zero or negative at the start give no scale.
    assert _train(FiniteLossHook(), [0.0] * 30 + [5.0]) == []
    assert _train(FiniteLossHook(), [-1.0] * 30 + [-5.0]) == []


def test_finite_divergence_is_flagged_once_per_epoch():
    # 20 iterations around 0.7 (median 0.7), then it explodes x10 per step
    # but stays finite: 7e2 is 1000x the reference, 7e3 the first above.
    losses = [0.6, 0.8] * 10 + [0.7 * 10**k for k in range(1, 8)]
    warnings = _train(FiniteLossHook(), losses, iters_per_epoch=25)
    assert len(warnings) == 2  # epoch 0 (iteration 24), then epoch 1
    first = warnings[0]
    assert first.startswith('The training loss diverges: 7000 at epoch 0 '
                            '(from 0), iteration 24 of the epoch (iteration '
                            '24 overall), 1e+04 times its reference 0.7 '
                            '(the median of the first 20 iterations')
    assert 'loss_cls=7000' in first
    assert 'optim_wrapper.optimizer.lr' in first
    assert 'optim_wrapper.clip_grad' in first
    assert 'epoch 1 (from 0), iteration 1 of the epoch' in warnings[1]
    # A lower factor flags earlier; None switches the check off.
    early = _train(FiniteLossHook(divergence_factor=50), losses, 100)
    assert 'diverges: 70 at' in early[0]
    assert _train(FiniteLossHook(divergence_factor=None), losses) == []


def test_divergence_can_stop_the_run():
    hook = FiniteLossHook(
        divergence_factor=100, reference_iters=3, stop_on_divergence=True)
    with pytest.raises(
            FloatingPointError,
            match=r'diverges: 201 at .*iteration 5 overall.*'
            r'times its reference 2 \(the median of the first 3'):
        _train(hook, [1.0, 3.0, 2.0, 150.0, 201.0])


def test_a_resumed_run_takes_a_new_reference():
    hook = FiniteLossHook(reference_iters=2)
    assert _train(hook, [100.0, 100.0, 50.0]) == []
    # After resuming, the loss is lower: 0.5 is the new reference.
    assert len(_train(hook, [0.5, 0.5, 600.0])) == 1


@pytest.mark.parametrize('kwargs', [
    dict(divergence_factor=1.0),
    dict(divergence_factor=float('inf')),
    dict(divergence_factor='1000'),
    dict(reference_iters=0),
])
def test_bad_arguments_are_named(kwargs):
    with pytest.raises(InvalidInputError, match='FiniteLossHook'):
        FiniteLossHook(**kwargs)
