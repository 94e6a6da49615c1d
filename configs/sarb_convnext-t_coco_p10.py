# SARB with an ImageNet ConvNeXt-T backbone instead of ResNet-101: only the
# backbone and the neck's input width change. Stages 0-2 frozen like the
# ResNet recipe; gap_before_final_norm=False keeps the 14x14 feature map.
_base_ = './sarb_r101_coco_p10.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch='tiny',
        out_indices=(3, ),
        frozen_stages=3,
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'convnext/convnext-tiny_32xb128_in1k_20221207-998cf3e9.pth',
            prefix='backbone')),
    neck=dict(in_channels=768))
