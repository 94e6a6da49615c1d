"""Reading user-supplied ``.npy`` files without trusting them.

``np.load`` allocates the array its header declares before reading any
data, so a 200-byte file declaring shape (100000, 100000) costs 75 GB; it
blocks forever on a FIFO and fails with unrelated messages on an empty
file or an ``.npz`` archive. :func:`load_checked_npy` reads and checks the
header first and only then the data, from the same open file.
"""
import os
import stat
from typing import Optional, Sequence

import numpy as np

from .errors import (InputPathTypeError, InvalidInputError,
                     MissingInputFileError)

# dtype kinds a caller may allow, and how an error message names them.
_KIND_NAMES = {
    'b': 'bool',
    'i': 'integer',
    'u': 'unsigned integer',
    'f': 'float'
}


def load_checked_npy(path: str,
                     what: str,
                     expected_shape: Optional[Sequence[Optional[int]]] = None,
                     allowed_kinds: str = 'iuf',
                     fix: str = '',
                     shape_note: str = '') -> np.ndarray:
    """Load a plain ``.npy`` array, checking the file before the data.

    Args:
        path (str): The ``.npy`` file.
        what (str): How messages name it, e.g. ``'partial_file'``.
        expected_shape (Sequence, optional): The required shape; an entry
            ``None`` accepts any size along that axis (the number of axes
            is still checked). Checked from the header, before the data is
            allocated.
        allowed_kinds (str): Accepted ``dtype.kind`` letters, from
            ``'biuf'``. Defaults to ``'iuf'`` (real numbers). Objects
            (pickles), strings, complex and structured arrays are never
            accepted.
        fix (str): Sentence appended to messages about the file itself
            (missing, unreadable, wrong format or dtype): how to make a
            good one.
        shape_note (str): Sentence appended to the shape mismatch message.

    Returns:
        np.ndarray: The array as stored (dtype and shape unchanged).

    Raises:
        MissingInputFileError: ``path`` does not exist.
        InputPathTypeError: ``path`` is not a ``str`` or path-like.
        InvalidInputError: Anything else that makes the file unusable.
    """
    unknown = set(allowed_kinds) - set(_KIND_NAMES)
    if unknown:
        raise ValueError(f'allowed_kinds may only hold {"".join(_KIND_NAMES)}'
                         f', got {allowed_kinds!r}.')
    fix = f' {fix}' if fix else ''
    if not (isinstance(path, str) or hasattr(path, '__fspath__')):
        raise InputPathTypeError(
            f'{what} must be the path of a .npy file, but got {path!r}.{fix}')
    path = os.fspath(path)
    name = f'{what} {path!r}'
    try:
        # stat before open: opening a FIFO blocks until a writer appears.
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingInputFileError(f'{name} does not exist.{fix}') from None
    except OSError as err:
        raise InvalidInputError(
            f'{name} cannot be read ({err.strerror or err}).{fix}') from None
    if not stat.S_ISREG(mode):
        kind = 'a directory' if stat.S_ISDIR(mode) else (
            'a FIFO' if stat.S_ISFIFO(mode) else 'a device or socket')
        raise InvalidInputError(
            f'{name} is not a regular file: it is {kind}. Point it at the '
            f'.npy file itself.{fix}')
    try:
        with open(path, 'rb') as f:
            return _read(f, name, expected_shape, allowed_kinds, fix,
                         shape_note)
    except OSError as err:
        raise InvalidInputError(
            f'{name} cannot be read ({err.strerror or err}).{fix}') from None


def read_npy_header(f):
    """``(shape, dtype)`` from the header of the ``.npy`` data at ``f``'s
    position, reading nothing else.

    Raises:
        ValueError: Not a .npy header (or of version 3.0, which only
            structured arrays with unicode field names use).
    """
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f'unsupported .npy version {version}')
    return shape, dtype


def _read(f, name, expected_shape, allowed_kinds, fix, shape_note):
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise InvalidInputError(
            f'{name} is empty (0 bytes), so it is not a NumPy .npy file; it '
            f'was probably not written completely.{fix}')
    if f.read(4) == b'PK\x03\x04':
        raise InvalidInputError(
            f'{name} is an .npz (zip) archive; expected a single .npy array '
            f'(written with np.save, not np.savez).{fix}')
    f.seek(0)
    try:
        shape, dtype = read_npy_header(f)
    except (ValueError, EOFError, SyntaxError) as err:
        raise InvalidInputError(
            f'{name} is not a NumPy .npy file ({err}); it may be truncated '
            f'or of another format.{fix}') from None
    _check_dtype(name, dtype, allowed_kinds, fix)
    if expected_shape is not None:
        expected = tuple(expected_shape)
        if len(shape) != len(expected) or any(
                e is not None and s != e for s, e in zip(shape, expected)):
            shown = tuple('any' if e is None else e for e in expected)
            wanted = str(shown).replace("'", '')
            note = f' {shape_note}' if shape_note else ''
            raise InvalidInputError(
                f'{name} has shape {shape}, expected {wanted}.{note}')
    data_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = size - f.tell()
    if have < data_bytes:
        # np.load would allocate the declared array before noticing.
        raise InvalidInputError(
            f'{name} cannot be read (its header declares shape {shape} of '
            f'{dtype}, {data_bytes} bytes of data, but only {have} bytes '
            f'follow); it is truncated.{fix}')
    f.seek(0)
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, EOFError) as err:
        raise InvalidInputError(
            f'{name} cannot be read ({err}); it may be truncated.{fix}'
        ) from None


def _check_dtype(name, dtype, allowed_kinds, fix):
    if dtype.kind in allowed_kinds and dtype.fields is None:
        return
    kinds = [_KIND_NAMES[k] for k in _KIND_NAMES if k in allowed_kinds]
    if set(allowed_kinds) == set('iuf'):
        wanted = 'real numbers (float or integer)'
    else:
        wanted = ' or '.join(kinds) + ' values'
    why = ''
    if dtype.hasobject:
        why = (' (Python objects, stored pickled; they are never unpickled, '
               'since a pickle can run code)')
    elif dtype.fields is not None:
        why = ' (a structured array)'
    raise InvalidInputError(
        f'{name} holds {dtype} values{why}; expected {wanted}.{fix}')
