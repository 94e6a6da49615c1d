"""Numpy arrays and scalars rebuilt from untrusted pickles without objects.

A pickle rebuilds an array with ``_reconstruct(ndarray, ...)`` and then
``ndarray.__setstate__((version, shape, dtype, fortran, raw bytes))``. With
the real ``ndarray``, ``dtype`` and ``scalar``, a crafted pickle can make an
object-dtype array (or a dtype whose state was rewritten to hold object
fields) over raw bytes it chose: reading an element dereferences those
bytes as pointers. The stand-ins here accept only plain dtypes (booleans,
numbers, fixed-size strings), rebuilt from their type string, so the bytes
are only ever data.
"""
import pickle

import numpy as np

# Kinds whose items are plain bytes: bool, ints, floats, complex, bytes, str.
_PLAIN_KINDS = frozenset('biufcSU')


def plain_dtype(dtype) -> np.dtype:
    """A freshly built copy of ``dtype`` if it holds plain data.

    Raises:
        pickle.UnpicklingError: Objects, structured or sub-array dtypes,
            or anything that is not a dtype.
    """
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f'expected a numpy dtype, got '
                                     f'{type(dtype).__name__}')
    if (dtype.kind not in _PLAIN_KINDS or dtype.hasobject
            or dtype.fields is not None or dtype.names is not None
            or dtype.subdtype is not None):
        raise pickle.UnpicklingError(
            f'numpy dtype {dtype!r} is not plain data (objects, structured '
            'or sub-array dtypes are refused)')
    # A fresh copy from its type string: a state rewritten by BUILD does not
    # carry over, and a later BUILD cannot reach numpy's shared dtypes.
    return np.dtype(dtype.str, False, True)


class _FrozenClass(type):
    """A class whose attributes a pickle's BUILD cannot replace."""

    def __setattr__(cls, name, value):
        raise pickle.UnpicklingError(
            f'refusing to set {name!r} on {cls.__name__}')


class SafeNdarray(np.ndarray, metaclass=_FrozenClass):
    """Stands in for ``numpy.ndarray`` in allowlists: it cannot be called
    (``ndarray(shape, 'O', buffer)`` would read the buffer as pointers), and
    its ``__setstate__`` takes plain dtypes only."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError(
            'numpy.ndarray(...) is refused; arrays are rebuilt only by '
            '_reconstruct and a checked state')

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError('malformed numpy array state')
        version, shape, dtype, fortran, raw = state
        super().__setstate__(
            (version, shape, plain_dtype(dtype), fortran, raw))

    def __reduce_ex__(self, protocol):
        # Saved again (a loaded checkpoint edited and re-saved), an array
        # must name ``numpy.ndarray``, not this class, or the file it goes
        # to would no longer load under the same allowlist.
        return self.view(np.ndarray).__reduce_ex__(protocol)

    def __reduce__(self):
        return self.view(np.ndarray).__reduce__()


def safe_dtype(obj, align=False, copy=True) -> np.dtype:
    """``numpy.dtype(...)`` for plain dtypes only, always a copy (BUILD on
    numpy's shared ``float64`` would change every float64 array)."""
    return plain_dtype(np.dtype(obj, bool(align), True))


def safe_scalar(dtype, data=None):
    """``numpy._core.multiarray.scalar`` for plain dtypes only."""
    dtype = plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError('malformed numpy scalar')
    return np.frombuffer(data, dtype=dtype)[0]


def safe_reconstruct(subtype, shape, dtype_char):
    """``numpy._core.multiarray._reconstruct`` for :class:`SafeNdarray`
    only (the array is then filled by its checked ``__setstate__``)."""
    if subtype is not SafeNdarray:
        raise pickle.UnpicklingError(
            f'numpy _reconstruct of {subtype!r} is refused')
    return np.ndarray.__new__(SafeNdarray, (0, ), np.uint8)
