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


class _Forged:
    """Pickles as the given reduce tuple: what a crafted checkpoint holds."""

    def __init__(self, *reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    return multiarray


_RAW_POINTER = b'AAAAAAAA'
# Each is refused; with numpy's own classes allowlisted the first two read
# b'AAAAAAAA' as an object pointer (a segmentation fault when touched) and
# the third hands numpy's shared float64 dtype to the pickle.
FORGED_CHECKPOINTS = {
    'ndarray_called':
    lambda: _Forged(np.ndarray, ((1, ), 'O', _RAW_POINTER)),
    'object_state':
    lambda: _Forged(_multiarray()._reconstruct, (np.ndarray, (0, ), b'b'),
                    (1, (1, ), np.dtype('O'), False, _RAW_POINTER)),
    'shared_dtype_called':
    lambda: _Forged(type(np.dtype('f8')), ()),
}


@pytest.mark.parametrize('name', sorted(FORGED_CHECKPOINTS))
def test_forged_numpy_in_a_checkpoint_is_refused(tmp_path, name):
    path = tmp_path / f'{name}.pth'
    torch.save({'meta': FORGED_CHECKPOINTS[name]()}, path)
    with pytest.raises(pickle.UnpicklingError):
        loaded = torch.load(path, weights_only=True)
        repr(loaded)  # what a segmentation fault would come from
    assert np.dtype('f8').str == '<f8'


def test_a_loaded_checkpoint_saves_and_loads_again(tmp_path):
    """Arrays come back as a checked subclass; saved again they must name
    plain ``numpy.ndarray`` or the edited file would be refused."""
    hub = MessageHub('resave-test')
    hub.update_scalar('train/loss', 1.0)
    state = dict(message_hub=hub.state_dict(), arr=np.arange(3.))
    first = tmp_path / 'first.pth'
    torch.save(state, first)
    loaded = torch.load(first, weights_only=True)
    loaded['arr'][0] = 7.
    second = tmp_path / 'second.pth'
    torch.save(loaded, second)
    again = torch.load(second, weights_only=True)
    np.testing.assert_array_equal(again['arr'], [7., 1., 2.])
    assert again['message_hub']['log_scalars']['train/loss'].mean() == 1.


def test_dtype_classes_cannot_be_called_by_any_name(tmp_path, monkeypatch):
    """The dtype classes are allowlisted for BUILD only: a GLOBAL under
    any module and name (here the one they were first registered under)
    resolves to nothing."""
    import sys
    import types
    module = types.ModuleType('sarb_mm.build_only')
    monkeypatch.setitem(sys.modules, 'sarb_mm.build_only', module)

    class Spelled:
        __module__ = 'sarb_mm.build_only'
        __qualname__ = 'Float64DType'

    module.Float64DType = Spelled
    path = tmp_path / 'spelled.pth'
    torch.save({'meta': _Forged(Spelled, ())}, path)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize('dtype', ['float32', 'bool', 'int32', 'uint8'])
def test_other_plain_numpy_values_load(tmp_path, dtype):
    path = tmp_path / 'values.pth'
    torch.save(
        dict(array=np.arange(3).astype(dtype), scalar=np.ones(1, dtype)[0]),
        path)
    loaded = torch.load(path, weights_only=True)
    np.testing.assert_array_equal(loaded['array'], np.arange(3).astype(dtype))
    assert loaded['array'].dtype == dtype and loaded['scalar'] == 1
