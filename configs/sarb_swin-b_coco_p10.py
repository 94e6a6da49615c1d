# SARB on an ImageNet-1k Swin-B (window 7) instead of ResNet-101: the last
# stage's 14 x 14 map at 448 px. Only the backbone, the neck's input width
# and the optimizer change.
_base_ = './_base_/sarb_coco_p10_layer_decay.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        arch='base',
        img_size=448,
        out_indices=(3, ),
        # Below 224 px (e.g. the 64-px demo) the last maps are smaller than
        # the 7 x 7 window: pad them instead of failing. No effect at 448.
        pad_small_map=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'swin-transformer/swin_base_224_b16x64_300e_imagenet_20210616_'
            '190742-93230b0d.pth',
            prefix='backbone')),
    neck=dict(in_channels=1024))
# mmpretrain's Swin-B fine-tuning recipe (SimMIM): layer decay 0.9, gradient
# norm clipped at 5.
optim_wrapper = dict(
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(
        layer_decay_rate=0.9,
        custom_keys={'.relative_position_bias_table': dict(decay_mult=0.)}))
