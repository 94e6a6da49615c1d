import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import sarb_mm  # noqa: F401  (registers the allowlist)
from sarb_mm.utils import restricted_getattr


class _Payload:
    """Runs a command when unpickled, if the loader lets it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_mmengine_logging_state_loads_with_weights_only(tmp_path):
    hub = MessageHub('ckpt-test')
    for value in (1.0, 2.5, 4.0):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', np.int64(3))
    state = dict(
        state_dict={'w': torch.ones(2)},
        message_hub=hub.state_dict(),
        meta=dict(seed=np.float64(0.5), arr=np.arange(3)))
    path = tmp_path / 'ok.pth'
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(2.5)
    np.testing.assert_array_equal(loaded['meta']['arr'], np.arange(3))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Payload(str(marker))}, path)
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_restricted_getattr_only_resolves_history_statistics():
    assert restricted_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError):
        restricted_getattr(os, 'system')
    with pytest.raises(pickle.UnpicklingError):
        restricted_getattr(HistoryBuffer, '__init__')
