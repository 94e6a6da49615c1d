# Fine-tuning recipe for the ViT, Swin and ConvNeXt backbones: the published
# 20 epochs, batch 8 and step schedule, with the optimizer of mmpretrain's
# fine-tuning recipes for these backbones: AdamW (decoupled weight decay
# 0.05, none on norms, biases and other 1-d parameters) and layer-wise lr
# decay: the head and neck train at lr, backbone depth k of K at
# lr * layer_decay_rate ** (K - 1 - k). Leaf configs set the rate and
# exempt their backbone's position tables from decay. sarb_mm's constructor
# is mmpretrain's with the no-decay rule extended to 0-d parameters (SARB's
# blending weights alpha and beta), which mmpretrain's would decay.
_base_ = './adam_20e.py'
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=1e-5,
        weight_decay=0.05,
        betas=(0.9, 0.999)),
    constructor='SARBLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.))
