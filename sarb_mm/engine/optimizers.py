"""Layer-wise lr decay whose no-decay rule also covers 0-d parameters."""
from typing import Callable, List, Optional

import torch.nn as nn
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SARBLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's ``LearningRateDecayOptimWrapperConstructor``, with
    ``flat_decay_mult`` applied to 0-d parameters as well as 1-d ones.

    mmpretrain's rule exempts ``param.ndim == 1`` (norms, biases, layer
    scales); scalar parameters such as SARB's blending weights ``alpha``
    and ``beta`` (0-d) fall outside it and would get the full weight decay
    (0.05 under AdamW pulls them about 3% toward 0 over a COCO schedule).
    A ``custom_keys`` entry that names a parameter still decides for it.
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        super().add_params(params, module, prefix, get_layer_depth, **kwargs)
        flat_decay_mult = self.paramwise_cfg.get('flat_decay_mult', None)
        if prefix or flat_decay_mult is None or self.base_wd is None:
            return  # children: the top-level call sees every group
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        for group in params:
            if group['params'][0].ndim == 0 and not any(
                    key in group['param_name'] for key in custom_keys):
                group['weight_decay'] = self.base_wd * flat_decay_mult
