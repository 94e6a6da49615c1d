# SARB on an ImageNet-1k ConvNeXt-B instead of ResNet-101: the last stage's
# 14 x 14 map at 448 px (gap_before_final_norm=False keeps the map). Only
# the backbone, the neck's input width and the optimizer change.
_base_ = [
    './_base_/models/sarb_r101.py', './_base_/datasets/coco2014_partial.py',
    './_base_/schedules/adamw_layer_decay_20e.py', './_base_/sarb_runtime.py'
]
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
    neck=dict(
        num_classes=80,
        word_vectors='data/word_vectors/coco_glove_300d.npy',
        in_channels=1024),
    head=dict(num_classes=80))
train_dataloader = dict(dataset=dict(known_ratio=0.1))
# mmpretrain's ConvNeXt fine-tuning recipe (SparK): layer decay 0.7.
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.7))
