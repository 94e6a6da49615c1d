from . import config_files  # noqa: F401  (mmengine reads YAML safely)
from .checkpoint_safety import (register_safe_checkpoint_globals,
                                restricted_getattr)
from .npy import load_checked_npy
from .word_vectors import COCO_CLASSES, build_word_vectors, name_to_words

__all__ = [
    'register_safe_checkpoint_globals', 'restricted_getattr', 'COCO_CLASSES',
    'build_word_vectors', 'name_to_words', 'load_checked_npy'
]
