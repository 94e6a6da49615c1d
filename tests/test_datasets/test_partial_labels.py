import os

import numpy as np
import pytest

from sarb_mm.datasets import (PartialLabelDataset, load_partial_labels,
                              make_partial_labels, split_fingerprint,
                              validate_known_ratio, validate_seed)
from sarb_mm.utils.errors import InvalidInputError


def _full_labels(seed=3, shape=(50, 7)):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(shape) < 0.3, 1, -1).astype(np.int8)


def _reference(labels, ratio, seed):
    # The published protocol, written out independently of the package:
    # np.random.seed(s); u = np.random.random(L.shape); keep where u < p.
    np.random.seed(seed)
    draws = np.random.random(labels.shape)
    out = labels.copy()
    for i in range(labels.shape[0]):
        for j in range(labels.shape[1]):
            if not draws[i, j] < ratio:
                out[i, j] = 0
    return out


@pytest.mark.parametrize('ratio', [0.1, 0.3, 0.5, 0.9, 1.0])
def test_matches_independent_protocol(ratio):
    labels = _full_labels()
    np.testing.assert_array_equal(
        make_partial_labels(labels, ratio), _reference(labels, ratio, 0))


def test_other_seed_differs_and_matches_reference():
    labels = _full_labels()
    ours = make_partial_labels(labels, 0.5, seed=7)
    np.testing.assert_array_equal(ours, _reference(labels, 0.5, 7))
    assert not np.array_equal(ours, make_partial_labels(labels, 0.5, seed=0))


def test_known_sets_nested_across_ratios():
    labels = _full_labels(shape=(200, 20))
    previous = np.zeros(labels.shape, dtype=bool)
    for ratio in (0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0):
        known = make_partial_labels(labels, ratio) != 0
        assert (known | ~previous).all(), 'a known entry was hidden again'
        assert abs(known.mean() - ratio) < 0.06
        previous = known
    assert previous.all()


def test_known_entries_keep_their_value_and_zero_stays_unknown():
    labels = _full_labels()
    labels[0, 0] = 0
    partial = make_partial_labels(labels, 1.0)
    assert partial[0, 0] == 0
    known = partial != 0
    np.testing.assert_array_equal(partial[known], labels[known])


@pytest.mark.parametrize(
    'bad',
    [0, 0.0, -0.1, 1.5, float('nan'), '0.5', True, None])
def test_bad_known_ratio(bad):
    with pytest.raises(ValueError, match='known_ratio'):
        validate_known_ratio(bad)


def test_bad_label_values():
    with pytest.raises(ValueError, match='outside'):
        make_partial_labels(np.array([[2, -1]]), 0.5)


def test_load_partial_file(tmp_path):
    labels = _full_labels()
    path = tmp_path / 'p.npy'
    partial = make_partial_labels(labels, 0.4)
    np.save(path, partial)
    np.testing.assert_array_equal(
        load_partial_labels(str(path), labels.shape, labels), partial)


@pytest.mark.parametrize('content, match', [
    (np.zeros((3, 7)), 'shape'),
    (np.full((50, 7), 2), 'outside'),
    (np.full((50, 7), np.nan), 'NaN'),
])
def test_load_partial_file_rejects(tmp_path, content, match):
    path = tmp_path / 'bad.npy'
    np.save(path, content)
    with pytest.raises(ValueError, match=match) as err:
        load_partial_labels(str(path), (50, 7))
    assert 'bad.npy' in str(err.value)


def test_load_partial_file_missing_and_contradicting(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.npy'):
        load_partial_labels(str(tmp_path / 'nope.npy'), (2, 2))
    labels = np.array([[1, -1], [-1, 1]])
    np.save(tmp_path / 'flip.npy', -labels)
    with pytest.raises(ValueError, match='disagrees'):
        load_partial_labels(str(tmp_path / 'flip.npy'), (2, 2), labels)


@pytest.mark.parametrize('bad, match', [
    (None, 'None is not allowed'),
    (-1, r'\[0, 2\*\*32 - 1\], got -1'),
    (2**32, r'got 4294967296'),
    (1.5, 'float'),
    ('3', 'str'),
    (True, 'bool'),
])
def test_bad_seed_names_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match) as err:
        make_partial_labels(_full_labels(), 0.5, seed=bad)
    assert str(err.value).startswith('seed')
    with pytest.raises(ValueError, match='PartialLabelDataset seed'):
        PartialLabelDataset(
            dict(type='CocoMultiLabelDataset'),
            known_ratio=0.5,
            seed=bad,
            lazy_init=True)


def test_numpy_integer_seeds_are_fine():
    labels = _full_labels()
    np.testing.assert_array_equal(
        make_partial_labels(labels, 0.5, seed=np.int64(3)),
        make_partial_labels(labels, 0.5, seed=3))
    assert validate_seed(2**32 - 1) == 2**32 - 1


def test_split_fingerprint_tells_splits_apart():
    labels = _full_labels()
    first = make_partial_labels(labels, 0.5, seed=0)
    assert split_fingerprint(first) == split_fingerprint(first.copy())
    # Same values as another dtype: same split, same fingerprint.
    assert split_fingerprint(first) == split_fingerprint(
        first.astype(np.float32))
    assert split_fingerprint(first) != split_fingerprint(
        make_partial_labels(labels, 0.5, seed=1))
    assert split_fingerprint(first) != split_fingerprint(
        make_partial_labels(labels, 0.6, seed=0))
    # Same bytes, other shape: another split.
    assert split_fingerprint(first) != split_fingerprint(
        first.reshape(first.shape[1], first.shape[0]))


# --------------------------------------------------------------------------
# Hostile partial files: clear InvalidInputErrors, never a huge allocation
# --------------------------------------------------------------------------


def _huge_header(path):
    # 128 bytes whose header declares 80 GB: np.load would allocate it.
    with open(path, 'wb') as f:
        np.lib.format.write_array_header_1_0(
            f, dict(descr='<f8', fortran_order=False, shape=(100000, 100000)))


def _npz(path):
    with open(path, 'wb') as f:  # np.savez would append .npz to a name
        np.savez(f, split=np.zeros((50, 7)))


def _truncated(path):
    np.save(path, np.zeros((50, 7)))
    with open(path, 'r+b') as f:
        f.truncate(200)


@pytest.mark.parametrize(
    'write, match', [
        (lambda p: open(p, 'wb').close(), r'is empty \(0 bytes\)'),
        (_npz, r'is an \.npz \(zip\) archive'),
        (lambda p: open(p, 'w').write('-1 0 1\n'),
         r'is not a NumPy \.npy file'),
        (_truncated, r'cannot be read \(.*\); it is truncated'),
        (lambda p: np.save(p, np.full((50, 7), None), allow_pickle=True),
         r'holds object values \(Python objects'),
        (lambda p: np.save(p, np.full((50, 7), '1')), r'holds <U1 values'),
        (lambda p: np.save(p, np.ones(
            (50, 7), dtype=complex)), r'holds complex128 values'),
        (lambda p: np.save(p, np.zeros(
            (50, 7), dtype=[('x', 'i1')])), r'\(a structured array\)'),
        (lambda p: np.save(p, np.ones((50, 7), dtype=bool)), r'holds bool'),
        (_huge_header, r'has shape \(100000, 100000\), expected \(50, 7\)\. '
         r'The dataset needs \(num_images, num_classes\)'),
    ],
    ids=[
        'empty', 'npz', 'text', 'truncated', 'object', 'str', 'complex',
        'structured', 'bool', 'huge_header'
    ])
def test_hostile_partial_files(tmp_path, write, match):
    path = str(tmp_path / 'bad.npy')
    write(path)
    with pytest.raises(InvalidInputError, match=match) as err:
        load_partial_labels(path, (50, 7))
    message = str(err.value)
    assert message.startswith(f'partial_file {path!r} ')
    if 'shape' not in match:
        assert message.endswith('or use known_ratio instead.')  # the fix


def test_huge_header_without_expected_shape(tmp_path):
    path = str(tmp_path / 'huge.npy')
    _huge_header(path)
    with pytest.raises(InvalidInputError, match='it is truncated'):
        load_partial_labels(path)
    np.save(path, np.zeros((2, 3, 4)))
    with pytest.raises(
            InvalidInputError,
            match=r'has shape \(2, 3, 4\), expected \(any, any\)'):
        load_partial_labels(path)


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
def test_partial_file_not_a_regular_file(tmp_path):
    fifo = str(tmp_path / 'fifo.npy')
    os.mkfifo(fifo)
    for path, kind in ((str(tmp_path), 'a directory'), (fifo, 'a FIFO')):
        with pytest.raises(InvalidInputError) as err:
            load_partial_labels(path, (50, 7))
        assert not isinstance(err.value, FileNotFoundError)
        assert str(err.value).startswith(
            f'partial_file {path!r} is not a regular file: it is {kind}.')


def test_protocol_errors_are_invalid_input_errors(tmp_path):
    with pytest.raises(InvalidInputError, match='known_ratio'):
        validate_known_ratio(0)
    with pytest.raises(InvalidInputError, match='seed=None'):
        validate_seed(None)
    with pytest.raises(InvalidInputError, match='outside'):
        make_partial_labels(np.array([[2, -1]]), 0.5)
    # Missing: both kinds, so `except FileNotFoundError` keeps working.
    with pytest.raises(InvalidInputError, match='does not exist') as err:
        load_partial_labels(str(tmp_path / 'nope.npy'), (2, 2))
    assert isinstance(err.value, FileNotFoundError)
    np.save(tmp_path / 'p.npy', np.array([[1, 1], [1, 1]]))
    with pytest.raises(InvalidInputError, match='disagrees'):
        load_partial_labels(
            str(tmp_path / 'p.npy'), (2, 2), np.array([[1, -1], [-1, 1]]))
