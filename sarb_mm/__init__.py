"""SARB for multi-label recognition with partial labels, as an mmpretrain
plugin. Importing the package registers every component into the mmpretrain
registries and makes mmengine checkpoints loadable with weights_only on."""
from .dependencies import check_mmpretrain_importable

check_mmpretrain_importable()  # before anything imports mmpretrain

from .utils import register_safe_checkpoint_globals  # noqa: E402

register_safe_checkpoint_globals()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
