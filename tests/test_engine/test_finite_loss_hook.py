from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from sarb_mm.engine.hooks import FiniteLossHook
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
