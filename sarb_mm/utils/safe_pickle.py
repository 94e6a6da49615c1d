"""Read pickle files that other people send without running their code.

A pickle names functions to call while it is loaded, so ``pickle.load`` of
a received ``.pkl`` can run any command. :func:`load_pickle_data` loads only
plain data: dicts, lists, tuples, sets, strings, bytes, numbers, ``None``,
numpy arrays and scalars of plain dtypes (never objects:
:mod:`sarb_mm.utils.safe_numpy`), and torch tensors inside their storage
(the storage read with ``torch.load(weights_only=True)``). Every function
it resolves is a fresh wrapper, so a pickle cannot rewrite shared ones.
Any other global the pickle names is refused before it is imported, let
alone called. This is
the allowlist approach of checkpoint loading
(:mod:`sarb_mm.utils.checkpoint_safety`), applied to mmengine's
``DumpResults`` files (``tools/test.py --out preds.pkl``).
"""
import builtins
import io
import pickle
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from .errors import InvalidInputError
from .paths import check_input_file
from .safe_numpy import SafeNdarray, safe_dtype, safe_reconstruct, safe_scalar

# Fresh per lookup: a pickle's BUILD may set attributes on what find_class
# returns, and must not reach the real (shared) functions.
_BUILTINS = ('set', 'frozenset', 'complex')
_NUMPY_MODULES = frozenset({'numpy.core.multiarray', 'numpy._core.multiarray'})


def _load_storage_weights_only(data: bytes):
    """What ``torch.storage._load_from_bytes`` does, with the safe
    unpickler (the original calls ``torch.load(weights_only=False)``)."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _rebuild_tensor(storage,
                    storage_offset,
                    size,
                    stride,
                    requires_grad,
                    backward_hooks,
                    metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for plain tensors whose view
    stays inside their storage (torch would grow the storage, exposing
    uninitialised memory) and without hooks or extra attributes."""
    if backward_hooks or metadata:
        raise pickle.UnpicklingError(
            'a tensor with hooks or attributes is not plain data')
    if not (isinstance(storage, torch.storage.TypedStorage)
            and isinstance(storage_offset, int)
            and all(isinstance(v, int) and v >= 0 for v in (*size, *stride))
            and len(size) == len(stride) and storage_offset >= 0):
        raise pickle.UnpicklingError('malformed tensor')
    if all(size):
        extent = storage_offset + sum(
            (n - 1) * step for n, step in zip(size, stride)) + 1
        with warnings.catch_warnings():  # TypedStorage is what pickles hold
            warnings.simplefilter('ignore', UserWarning)
            available = storage.untyped().nbytes() // storage.element_size()
        if extent > available:
            raise pickle.UnpicklingError(
                f'a tensor of shape {tuple(size)} reaches element {extent} '
                f'of a storage of {available}')
    return torch._utils._rebuild_tensor_v2(storage,
                                           storage_offset, tuple(size),
                                           tuple(stride), requires_grad,
                                           OrderedDict())


def _fresh(function):
    """A new function object that calls ``function``."""

    def call(*args, **kwargs):
        return function(*args, **kwargs)

    return call


class DataOnlyUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals of plain data.

    Raises:
        pickle.UnpicklingError: For any other global, naming it.
    """

    def find_class(self, module: str, name: str):
        found = self._allowed(module, name)
        if found is None:
            raise pickle.UnpicklingError(
                f'the file refers to {module}.{name}, which is not plain '
                'data (a pickle can run code through such references, so '
                'it is not loaded)')
        return found

    @staticmethod
    def _allowed(module: str, name: str):
        if module == 'builtins' and name in _BUILTINS:
            return _fresh(getattr(builtins, name))
        if module == 'collections' and name == 'OrderedDict':
            return _fresh(OrderedDict)
        if module in _NUMPY_MODULES and name == '_reconstruct':
            return _fresh(safe_reconstruct)
        if module in _NUMPY_MODULES and name == 'scalar':
            return _fresh(safe_scalar)
        if module == 'numpy' and name == 'ndarray':
            return SafeNdarray  # its class attributes cannot be set
        if module == 'numpy' and name == 'dtype':
            return _fresh(safe_dtype)
        if module == 'torch._utils' and name == '_rebuild_tensor_v2':
            return _fresh(_rebuild_tensor)
        if module == 'torch.storage' and name == '_load_from_bytes':
            return _fresh(_load_storage_weights_only)
        if module == 'torch' and name in ('Size', 'device'):
            return _fresh(getattr(torch, name))
        if module == 'torch' and isinstance(
                getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)  # C objects without attributes
        return None


def _plain_arrays(obj):
    """``obj`` with :class:`SafeNdarray` items as plain ``np.ndarray``."""
    if isinstance(obj, SafeNdarray):
        return obj.view(np.ndarray)
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _plain_arrays(value)
        return obj
    if isinstance(obj, list):
        obj[:] = [_plain_arrays(v) for v in obj]
        return obj
    if isinstance(obj, tuple) and any(
            isinstance(v, (SafeNdarray, dict, list, tuple)) for v in obj):
        return type(obj)(_plain_arrays(v)
                         for v in obj) if type(obj) is tuple else obj
    return obj


def load_pickle_data(path: str, what: str = 'Pickle file') -> Any:
    """Load a pickle file that may come from someone else, as plain data.

    Args:
        path (str): The ``.pkl`` file.
        what (str): Its role in messages, e.g. ``'Predictions file'``.

    Returns:
        The unpickled object (see the module notes for what it may hold).

    Raises:
        InvalidInputError: The file is missing or not a regular file, is
            not a pickle, or names anything but plain data (the object is
            then not built, and no code of the file runs).
    """
    check_input_file(path, what)
    try:
        with open(path, 'rb') as f:
            obj = _plain_arrays(DataOnlyUnpickler(f).load())
    except pickle.UnpicklingError as err:
        raise InvalidInputError(
            f'{what} {path} cannot be loaded safely: {err}. Only pickles of '
            'plain data (dicts, lists, strings, numbers, numpy arrays, torch '
            'tensors) are read; ask for the file in a data format such as '
            '.npz or JSON.') from None
    except MemoryError:
        raise InvalidInputError(
            f'{what} {path} declares more data than fits in memory; it is '
            'not a predictions file of this project.') from None
    except Exception as err:  # noqa: BLE001  (truncated / not a pickle)
        raise InvalidInputError(
            f'Cannot read {what.lower()} {path} ({type(err).__name__}: '
            f'{err}); it is truncated or not a pickle file.') from None
    return obj
