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
    # An object array is rebuilt from numpy.dtype('O8'), which is allowed,
    # but its items are plain data here; a class instance is not.
    path = _write(tmp_path / 'objects.pkl', objects)
    np.testing.assert_array_equal(load_pickle_data(path), objects)

    path = _write(tmp_path / 'instance.pkl', Plain())
    with pytest.raises(InvalidInputError, match=r'test_safe_pickle\.Plain'):
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
