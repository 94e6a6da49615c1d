"""load_checked_npy: the header is checked before any data is allocated."""
import os
import re

import numpy as np
import pytest

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.npy import (InputPathTypeError, MissingInputFileError,
                               load_checked_npy)

FIX = 'Make a good one.'


def _header(path, shape, descr='<f8', extra=b''):
    with open(path, 'wb') as f:
        np.lib.format.write_array_header_1_0(
            f, dict(descr=descr, fortran_order=False, shape=shape))
        f.write(extra)


def _npz(path):
    with open(path, 'wb') as f:  # np.savez would append .npz to a name
        np.savez(f, a=np.zeros(3))


@pytest.mark.parametrize(
    'array',
    [
        np.arange(12, dtype=np.float16).reshape(3, 4),
        np.arange(12, dtype='>f4').reshape(3, 4),  # big-endian
        np.asfortranarray(np.arange(12, dtype=np.int8).reshape(3, 4)),
        np.arange(12, dtype=np.uint16).reshape(3, 4),
        np.zeros((0, 4)),
    ],
    ids=['float16', 'big_endian', 'fortran', 'uint16', 'empty_rows'])
def test_round_trip(tmp_path, array):
    path = str(tmp_path / 'a.npy')
    np.save(path, array)
    loaded = load_checked_npy(path, 'thing', array.shape)
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)
    # A wildcard axis accepts any size; the number of axes still counts.
    np.testing.assert_array_equal(
        load_checked_npy(path, 'thing', (None, array.shape[1])), array)
    with pytest.raises(
            InvalidInputError,
            match=r'has shape \(\d+, 4\), expected \(any, any, '
            r'any\)\. Note\.'):
        load_checked_npy(path, 'thing', (None, None, None), shape_note='Note.')


def test_huge_declared_shape_is_refused_before_allocation(tmp_path):
    # 128 bytes declaring 80 GB: np.load would try to allocate it.
    path = str(tmp_path / 'huge.npy')
    _header(path, (100000, 100000))
    assert os.path.getsize(path) == 128
    with pytest.raises(
            InvalidInputError,
            match=r'declares shape \(100000, 100000\) of float64, '
            r'80000000000 bytes of data, but only 0 bytes follow'
            r'\); it is truncated\. Make a good one\.'):
        load_checked_npy(path, 'thing', (None, None), fix=FIX)
    with pytest.raises(
            InvalidInputError,
            match=r'has shape \(100000, 100000\), expected '
            r'\(2, 3\)'):
        load_checked_npy(path, 'thing', (2, 3), fix=FIX)


def test_missing_file_is_both_error_kinds(tmp_path):
    path = str(tmp_path / 'nope.npy')
    with pytest.raises(MissingInputFileError) as info:
        load_checked_npy(path, 'thing', fix=FIX)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, InvalidInputError)
    assert str(info.value) == f'thing {path!r} does not exist. {FIX}'
    with pytest.raises(MissingInputFileError) as info:  # a pathlib.Path
        load_checked_npy(tmp_path / 'nope.npy', 'thing')
    assert str(info.value) == f'thing {path!r} does not exist.'
    with pytest.raises(InputPathTypeError) as info:
        load_checked_npy(3, 'thing')  # not a file descriptor
    assert isinstance(info.value, TypeError)


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
def test_directory_and_fifo(tmp_path):
    fifo = str(tmp_path / 'fifo.npy')
    os.mkfifo(fifo)  # np.load would block on it
    for path, kind in ((str(tmp_path), 'a directory'), (fifo, 'a FIFO')):
        with pytest.raises(
                InvalidInputError,
                match=re.escape(f'{path!r} is not a regular '
                                f'file: it is {kind}.')):
            load_checked_npy(path, 'thing', fix=FIX)


@pytest.mark.parametrize(
    'write, match', [
        (lambda p: open(p, 'wb').close(),
         r'is empty \(0 bytes\), so it is not a NumPy \.npy file'),
        (_npz, r'is an \.npz \(zip\) archive'),
        (lambda p: open(p, 'w').write('1 2 3\n'),
         r'is not a NumPy \.npy file'),
        (lambda p: _header(p, (2, 3), extra=b'\0' * 40),
         r'48 bytes of data, but only 40 bytes follow'),
        (lambda p: np.save(p, np.array([None, 1]), allow_pickle=True),
         r'holds object values \(Python objects, stored pickled; they are '
         r'never unpickled'),
        (lambda p: np.save(p, np.array(['ab'])), r'holds <U2 values'),
        (lambda p: np.save(p, np.ones(2, dtype=complex)),
         r'holds complex128 values; expected real numbers'),
        (lambda p: np.save(p, np.zeros(2, dtype=[('x', '<f4')])),
         r"holds \[\('x', '<f4'\)\] values \(a structured array\)"),
        (lambda p: np.save(p, np.ones(2, dtype=bool)), r'holds bool values'),
    ],
    ids=[
        'empty', 'npz', 'text', 'truncated', 'object', 'str', 'complex',
        'structured', 'bool'
    ])
def test_bad_files(tmp_path, write, match):
    path = str(tmp_path / 'bad.npy')
    write(path)
    with pytest.raises(InvalidInputError, match=match) as info:
        load_checked_npy(path, 'thing', fix=FIX)
    message = str(info.value)
    assert message.startswith(f'thing {path!r} ')
    assert message.endswith(FIX)


def test_allowed_kinds(tmp_path):
    path = str(tmp_path / 'b.npy')
    np.save(path, np.array([True, False]))
    np.testing.assert_array_equal(
        load_checked_npy(path, 'thing', allowed_kinds='b'), [True, False])
    np.save(path, np.array([1.5]))
    with pytest.raises(
            InvalidInputError,
            match='holds float64 values; expected bool or '
            'integer values'):
        load_checked_npy(path, 'thing', allowed_kinds='bi')
    with pytest.raises(ValueError, match="allowed_kinds may only hold biuf"):
        load_checked_npy(path, 'thing', allowed_kinds='c')
