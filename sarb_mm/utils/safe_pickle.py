"""Read pickle files that other people send without running their code.

A pickle names functions to call while it is loaded, so ``pickle.load`` of
a received ``.pkl`` can run any command. :func:`load_pickle_data` loads only
plain data: dicts, lists, tuples, sets, strings, bytes, numbers, ``None``,
numpy arrays and scalars of non-object dtypes, and torch tensors (their
storage read with ``torch.load(weights_only=True)``). Any other global the
pickle names is refused before it is imported, let alone called. This is
the allowlist approach of checkpoint loading
(:mod:`sarb_mm.utils.checkpoint_safety`), applied to mmengine's
``DumpResults`` files (``tools/test.py --out preds.pkl``).
"""
import io
import pickle
from typing import Any

import numpy as np
import torch

from .errors import InvalidInputError
from .paths import check_input_file

_BUILTINS = {
    'set': set,
    'frozenset': frozenset,
    'complex': complex,
    'bytearray': bytearray,
}
_NUMPY_MODULES = frozenset({'numpy.core.multiarray', 'numpy._core.multiarray'})
_NUMPY_FUNCTIONS = frozenset({'_reconstruct', 'scalar'})


def _load_storage_weights_only(data: bytes):
    """What ``torch.storage._load_from_bytes`` does, with the safe
    unpickler (the original calls ``torch.load(weights_only=False)``)."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _numpy_dtype_class(name: str):
    """A ``numpy.dtypes.<X>DType`` class of a numeric, bool or string
    dtype (never the object dtype), or None."""
    cls = getattr(getattr(np, 'dtypes', None), name, None)
    if (isinstance(cls, type) and issubclass(cls, np.dtype)
            and name != 'ObjectDType'):
        return cls
    return None


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
            return _BUILTINS[name]
        if module == 'collections' and name == 'OrderedDict':
            from collections import OrderedDict
            return OrderedDict
        if module in _NUMPY_MODULES and name in _NUMPY_FUNCTIONS:
            try:
                from numpy._core import multiarray
            except ImportError:  # numpy < 2
                from numpy.core import multiarray
            return getattr(multiarray, name)
        if module == 'numpy' and name in ('ndarray', 'dtype'):
            return getattr(np, name)
        if module == 'numpy.dtypes':
            return _numpy_dtype_class(name)
        if module == 'torch._utils' and name == '_rebuild_tensor_v2':
            return torch._utils._rebuild_tensor_v2
        if module == 'torch.storage' and name == '_load_from_bytes':
            return _load_storage_weights_only
        if module == 'torch' and name in ('Size', 'device'):
            return getattr(torch, name)
        if module == 'torch' and isinstance(
                getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return None


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
            obj = DataOnlyUnpickler(f).load()
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
