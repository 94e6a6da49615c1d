import numpy as np
import pytest

from sarb_mm.datasets import (PartialLabelDataset, load_partial_labels,
                              make_partial_labels, split_fingerprint,
                              validate_known_ratio, validate_seed)


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


@pytest.mark.parametrize('bad', [0, 0.0, -0.1, 1.5, float('nan'), '0.5',
                                 True, None])
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
        PartialLabelDataset(dict(type='CocoMultiLabelDataset'),
                            known_ratio=0.5, seed=bad, lazy_init=True)


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
