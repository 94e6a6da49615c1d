"""Pickles from other people load as plain data, never as code."""
import io
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.safe_pickle import load_pickle_data


class ShellPayload:
    """Runs a shell command when unpickled (what a hostile .pkl holds)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class EvalPayload:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()", )


class Plain:
    """An ordinary class: harmless here, but not plain data."""


def _write(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f)
    return str(path)


def test_plain_data_round_trips(tmp_path):
    data = [
        dict(
            pred_score=torch.tensor([0.25, 0.5, 1.0]),
            gt_label=torch.tensor([0, 2]),
            ints=torch.arange(6, dtype=torch.int16).reshape(2, 3)[:, 1:],
            array=np.linspace(0, 1, 5, dtype=np.float32),
            bools=np.array([True, False]),
            text=np.array(['cat', 'dog']),
            scalar=np.float64(2.5),
            count=np.int64(7),
            shape=torch.Size([2, 3]),
            dtype=torch.float16,
            ordered=OrderedDict(a=1, b=[1.5, None]),
            tags={'a', 'b'},
            frozen=frozenset({1}),
            number=3 + 4j,
            blob=b'\x00\x01',
            nested=[(np.arange(3), {
                'k': np.float32(1.5)
            })],
            img_shape=(448, 448),
            classes=('a', 'b', 'c'),
            flag=True,
            nothing=None)
    ]
    loaded = load_pickle_data(_write(tmp_path / 'ok.pkl', data))
    assert isinstance(loaded, list) and len(loaded) == 1
    got, want = loaded[0], data[0]
    assert set(got) == set(want)
    for key in ('pred_score', 'gt_label', 'ints'):
        assert got[key].dtype == want[key].dtype
        assert torch.equal(got[key], want[key])
    for key in ('array', 'bools', 'text'):
        np.testing.assert_array_equal(got[key], want[key])
        assert got[key].dtype == want[key].dtype
        assert type(got[key]) is np.ndarray
    array, inner = got['nested'][0]
    assert type(array) is np.ndarray and array.tolist() == [0, 1, 2]
    assert inner['k'] == np.float32(1.5) and inner['k'].dtype == np.float32
    for key in ('scalar', 'count', 'shape', 'dtype', 'ordered', 'tags',
                'frozen', 'number', 'blob', 'img_shape', 'classes', 'flag',
                'nothing'):
        assert got[key] == want[key] and type(got[key]) is type(want[key])


@pytest.mark.parametrize('payload', [ShellPayload, EvalPayload])
def test_code_payload_is_refused_and_not_run(tmp_path, payload):
    marker = tmp_path / 'ran'
    path = _write(tmp_path / 'evil.pkl', [dict(x=payload(marker))])
    with pytest.raises(InvalidInputError) as info:
        load_pickle_data(path, 'Predictions file')
    assert not marker.exists()
    message = str(info.value)
    assert path in message and 'not plain data' in message
    assert ('posix.system' in message or 'builtins.eval' in message)


def test_payload_inside_a_tensor_storage_is_refused(tmp_path):
    """A tensor's storage is itself a pickle (torch.save bytes); it is
    read with weights_only=True, not with the plain unpickler."""
    marker = tmp_path / 'ran'
    inner = io.BytesIO()
    torch.save(ShellPayload(marker), inner)

    class ForgedStorage:

        def __reduce__(self):
            return torch.storage._load_from_bytes, (inner.getvalue(), )

    path = _write(tmp_path / 'forged.pkl', [ForgedStorage()])
    with pytest.raises(InvalidInputError, match='forged.pkl'):
        load_pickle_data(path)
    assert not marker.exists()


def test_object_arrays_and_other_classes_are_refused(tmp_path):
    objects = np.array([{'a': 1}, None], dtype=object)
    path = _write(tmp_path / 'objects.pkl', objects)
    with pytest.raises(
            InvalidInputError, match="dtype\\('O'\\) is not "
            'plain data'):
        load_pickle_data(path)
    path = _write(tmp_path / 'instance.pkl', Plain())
    with pytest.raises(InvalidInputError, match=r'test_safe_pickle\.Plain'):
        load_pickle_data(path)


# Hand-written pickles of what pickle.dumps never produces.
FORGED = {
    # ndarray((1,), 'O', b'AAAAAAAA'): raw bytes read as an object pointer
    # (a segmentation fault with the real numpy.ndarray).
    'object_pointer': b'\x80\x04cnumpy\nndarray\nK\x01\x85\x8c\x01OC\x08'
    b'AAAAAAAA\x87R.',
    # BUILD on a resolved function: sets __defaults__ of the real
    # torch._utils._rebuild_tensor_v2 for every later torch.load.
    'function_state': b'\x80\x04ctorch._utils\n_rebuild_tensor_v2\nN}'
    b'\x8c\x0c__defaults__}\x8c\x03neg\x88s\x85s\x86b.',
    # bytearray(2e9): 30 bytes that fill 2 GB.
    'bytearray': b'\x80\x04cbuiltins\nbytearray\nJ\x00\x945w\x85R.',
}


@pytest.mark.parametrize('name', sorted(FORGED))
def test_forged_pickles_are_refused_or_harmless(tmp_path, name):
    import torch._utils
    defaults = torch._utils._rebuild_tensor_v2.__defaults__
    path = tmp_path / f'{name}.pkl'
    path.write_bytes(FORGED[name])
    try:
        load_pickle_data(str(path))
    except InvalidInputError:
        pass
    assert torch._utils._rebuild_tensor_v2.__defaults__ == defaults
    saved = tmp_path / 'w.pth'
    torch.save({'w': torch.tensor([1., 2.])}, saved)
    assert torch.equal(
        torch.load(saved, weights_only=True)['w'], torch.tensor([1., 2.]))


def test_a_tensor_larger_than_its_storage_is_refused(tmp_path):

    class Oversized:

        def __reduce__(self):
            storage = torch.tensor([1., 2.]).storage()
            return torch._utils._rebuild_tensor_v2, (storage, 0,
                                                     (10**6, ), (1, ), False,
                                                     OrderedDict())

    path = _write(tmp_path / 'big.pkl', Oversized())
    with pytest.raises(
            InvalidInputError,
            match='reaches element 1000000 of '
            'a storage of 2'):
        load_pickle_data(path)


def test_unreadable_files_are_named(tmp_path):
    truncated = tmp_path / 'cut.pkl'
    truncated.write_bytes(pickle.dumps(list(range(100)))[:20])
    with pytest.raises(InvalidInputError, match='cut.pkl .*truncated'):
        load_pickle_data(str(truncated))
    with pytest.raises(InvalidInputError, match='does not exist'):
        load_pickle_data(str(tmp_path / 'none.pkl'))
    fifo = tmp_path / 'fifo.pkl'
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match='is a FIFO'):
        load_pickle_data(str(fifo))
