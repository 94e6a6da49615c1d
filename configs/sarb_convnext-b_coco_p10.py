# SARB on an ImageNet-1k ConvNeXt-B instead of ResNet-101: the last stage's
# 14 x 14 map at 448 px (gap_before_final_norm=False keeps the map). Only
# the backbone, the neck's input width and the optimizer change.
_base_ = './_base_/sarb_coco_p10_layer_decay.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch='base',
        out_indices=(3, ),
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'convnext/convnext-base_32xb128_in1k_20221207-fbdb5eb9.pth',
            prefix='backbone')),
    neck=dict(in_channels=1024))
# mmpretrain's ConvNeXt fine-tuning recipe (SparK): layer decay 0.7.
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.7))
