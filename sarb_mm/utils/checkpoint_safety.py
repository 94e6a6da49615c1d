"""Let mmengine checkpoints load under ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7
pickles a few non-tensor objects (its ``HistoryBuffer`` logging state and the
numpy values inside it). Rather than switching the safe loader off, the exact
globals those checkpoints need are allowlisted. ``builtins.getattr`` is needed
because pickle stores ``HistoryBuffer.min`` and friends as
``getattr(HistoryBuffer, 'min')``; a restricted stand-in is registered under
that name so arbitrary attribute lookups stay refused.
"""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .safe_numpy import SafeNdarray, safe_dtype, safe_reconstruct, safe_scalar

_HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def restricted_getattr(obj, name, *default):
    """``getattr`` that only resolves ``HistoryBuffer`` statistic methods.

    Args:
        obj: The object looked up; must be ``HistoryBuffer`` or an instance.
        name (str): The attribute; one of ``min``, ``max``, ``current``,
            ``mean``.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    is_buffer = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
    if not is_buffer or name not in _HISTORY_BUFFER_STATISTICS:
        import pickle
        raise pickle.UnpicklingError(
            f'Refusing getattr({obj!r}, {name!r}) while loading a '
            'checkpoint: only HistoryBuffer statistics are allowlisted.')
    return getattr(obj, name, *default)


def _numpy_globals():
    """The numpy names mmengine checkpoints pickle, each mapped to a stand-in
    that rebuilds plain dtypes only (the real ``ndarray`` / ``dtype`` /
    ``scalar`` let a crafted checkpoint make object arrays over raw bytes:
    :mod:`sarb_mm.utils.safe_numpy`)."""
    modules = ['numpy._core.multiarray', 'numpy.core.multiarray']
    found = [(SafeNdarray, 'numpy.ndarray'), (safe_dtype, 'numpy.dtype')]
    for module in modules:
        found += [(safe_reconstruct, f'{module}._reconstruct'),
                  (safe_scalar, f'{module}.scalar')]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        # BUILD fills the dtype copies that safe_dtype returns only if their
        # classes are allowlisted; under their own names a pickle could
        # also call them, which returns numpy's shared dtype for BUILD to
        # rewrite. torch resolves only GLOBAL, whose module and name are
        # read up to a newline each: a registered name with a newline in
        # it can never be looked up, and keeps the classes types only.
        plain = {type(np.dtype(code)) for code in '?bBhHiIlLqQefdFD'}
        found += [(cls, f'build-only\n{cls.__name__}') for cls in plain]
    return found


def register_safe_checkpoint_globals() -> None:
    """Allowlist what mmengine checkpoints pickle (idempotent).

    Needs torch >= 2.4; older torch has no allowlist (and loads with
    ``weights_only=False`` by default), so there is nothing to register.
    """
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return
    torch.serialization.add_safe_globals([
        HistoryBuffer, *_numpy_globals(),
        (restricted_getattr, 'builtins.getattr')
    ])
