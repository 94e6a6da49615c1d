"""Using a trained model: building it from a checkpoint, inference,
category attention."""
from .attention import ClassAttention, check_attention_config, class_attention
from .image_paths import (IMAGE_EXTENSIONS, expand_image_path,
                          expand_image_paths)
from .inferencer import MultiLabelInferencer
from .model import init_model

__all__ = [
    'init_model', 'MultiLabelInferencer', 'class_attention', 'ClassAttention',
    'check_attention_config', 'expand_image_path', 'expand_image_paths',
    'IMAGE_EXTENSIONS'
]
