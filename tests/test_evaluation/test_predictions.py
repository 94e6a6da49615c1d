"""The plain-data predictions archive: written as the metric sees the
labels, read back with every member checked before it is allocated."""
import io
import zipfile

import numpy as np
import pytest
import torch

from sarb_mm.evaluation import (DumpPredictionArrays, load_prediction_arrays,
                                save_prediction_arrays)
from sarb_mm.utils.errors import InvalidInputError


def _sample(scores, positives, difficult=(), gt_score=None, path='x.jpg'):
    sample = dict(
        pred_score=torch.tensor(scores, dtype=torch.float32),
        gt_label=torch.tensor(positives, dtype=torch.long),
        gt_label_difficult=torch.tensor(difficult, dtype=torch.long),
        img_path=path)
    if gt_score is not None:
        sample['gt_score'] = torch.tensor(gt_score, dtype=torch.float32)
    return sample


def test_dump_writes_targets_as_the_metric_evaluates(tmp_path):
    out = str(tmp_path / 'preds.npz')
    metric = DumpPredictionArrays(out)
    metric.dataset_meta = dict(classes=('a', 'b', 'c'), partial_labels=True)
    metric.process(
        None,
        [
            _sample([0.9, 0.2, 0.4], [0], difficult=[2], path='one.jpg'),
            # partial labels: b unknown (0), c negative (-1)
            _sample([0.1, 0.7, 0.3], [0], gt_score=[1, 0, -1], path='two.jpg'),
        ])
    assert metric.evaluate(2) == {}
    loaded = load_prediction_arrays(out)
    np.testing.assert_allclose(
        loaded['scores'], [[0.9, 0.2, 0.4], [0.1, 0.7, 0.3]], rtol=1e-6)
    # Hand-made: a difficult-only entry and an unknown label are left out.
    np.testing.assert_array_equal(loaded['labels'], [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(loaded['valid'], [[1, 1, 0], [1, 0, 1]])
    assert loaded['classes'] == ['a', 'b', 'c']
    assert loaded['img_paths'] == ['one.jpg', 'two.jpg']
    with np.load(out, allow_pickle=False) as raw:  # plain arrays only
        assert raw['targets'].dtype == np.int8
        np.testing.assert_array_equal(raw['targets'], [[1, 0, -1], [1, -1, 0]])


def test_dump_needs_an_npz_name():
    with pytest.raises(InvalidInputError, match='must end with .npz'):
        DumpPredictionArrays('preds.pkl')


def _archive(path, **arrays):
    with zipfile.ZipFile(path, 'w') as archive:
        for key, value in arrays.items():
            if isinstance(value, bytes):
                archive.writestr(f'{key}.npy', value)
            else:
                buffer = io.BytesIO()
                np.save(buffer, value, allow_pickle=True)
                archive.writestr(f'{key}.npy', buffer.getvalue())
    return str(path)


def _good():
    return dict(
        scores=np.zeros((2, 3)),
        targets=np.zeros((2, 3), np.int8),
        classes=np.array(['a', 'b', 'c']),
        img_paths=np.array(['1.jpg', '2.jpg']))


def test_bad_archives_are_refused_by_name(tmp_path):
    path = str(tmp_path / 'ok.npz')
    save_prediction_arrays(path, np.ones((2, 3)), np.ones((2, 3)), 'abc',
                           ['1.jpg', '2.jpg'])
    assert load_prediction_arrays(path)['labels'].all()

    cases = {
        'missing': (dict(scores=np.zeros((2, 3))), r"lacks the array\(s\) "
                    r"\['targets', 'classes', 'img_paths'\]"),
        'objects':
        (dict(_good(),
              classes=np.array(['a', None, 'c'],
                               dtype=object)), 'classes has dtype object'),
        'shapes': (dict(_good(), targets=np.zeros(
            (3, 3), np.int8)), r'scores \(2, 3\) and targets \(3, 3\)'),
        'values': (dict(_good(), targets=np.full(
            (2, 3), 5, np.int8)), r'targets\[0, 0\] is 5'),
        'names':
        (dict(_good(),
              classes=np.array(['a'])), '1 class names for 3 score columns'),
    }
    for name, (arrays, message) in cases.items():
        bad = _archive(tmp_path / f'{name}.npz', **arrays)
        with pytest.raises(InvalidInputError, match=message):
            load_prediction_arrays(bad)

    # A header that declares 10^10 floats in a few bytes: refused before
    # anything is allocated.
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 3)))
    header['shape'] = (100000, 100000)
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    forged = out.getvalue() + b'\0' * 48
    bad = _archive(tmp_path / 'forged.npz', **dict(_good(), scores=forged))
    with pytest.raises(InvalidInputError, match='truncated or forged'):
        load_prediction_arrays(bad)

    not_zip = tmp_path / 'plain.npz'
    not_zip.write_bytes(b'not a zip file at all')
    with pytest.raises(InvalidInputError, match='not a readable .npz'):
        load_prediction_arrays(str(not_zip))


def test_upper_case_suffix_is_written_whole(tmp_path):
    """np.savez appends '.npz' to 'preds.NPZ': the data would go to another
    file and an empty preds.NPZ be left."""
    path = str(tmp_path / 'preds.NPZ')
    save_prediction_arrays(path, np.ones((2, 3)), np.ones((2, 3)), 'abc',
                           ['1.jpg', '2.jpg'])
    import os
    assert os.listdir(tmp_path) == ['preds.NPZ']
    assert load_prediction_arrays(path)['scores'].shape == (2, 3)


def test_empty_or_zero_width_arrays_are_refused(tmp_path):
    """Zero-byte items pass any size check: 10^7 empty paths would still be
    10^7 Python strings."""
    n = 10**7
    zero_width = dict(
        scores=np.zeros((n, 0)),
        targets=np.zeros((n, 0), np.int8),
        classes=np.zeros((0, ), '<U1'),
        img_paths=np.zeros((n, ), '<U1'))
    bad = _archive(tmp_path / 'zero.npz', **zero_width)
    with pytest.raises(InvalidInputError, match='at least one of each'):
        load_prediction_arrays(bad)
    # A zero-size item type, declared in a forged header.
    header = np.lib.format.header_data_from_array_1_0(np.zeros(2, '<U1'))
    header.update(descr='<U0', shape=(n, ))
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    bad = _archive(tmp_path / 'u0.npz',
                   **dict(_good(), img_paths=out.getvalue()))
    with pytest.raises(InvalidInputError, match='img_paths has dtype <U0'):
        load_prediction_arrays(bad)
