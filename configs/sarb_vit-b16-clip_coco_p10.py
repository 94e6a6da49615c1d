# SARB on a CLIP-pretrained ViT-B/16 (OpenAI CLIP, ImageNet-1k fine-tuned,
# converted by mmpretrain) instead of ResNet-101. At 448 px the feature map
# is the 28 x 28 grid of patch tokens; the 224-px position embeddings are
# resized (bicubic) when the weights load, as mmpretrain does. Only the
# backbone, the neck's input width and the optimizer change.
_base_ = './_base_/sarb_coco_p10_layer_decay.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='b',
        img_size=448,
        patch_size=16,
        pre_norm=True,
        out_type='featmap',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'clip/clip-vit-base-p16_openai-pre_3rdparty_in1k_20221220-'
            'c7d9c899.pth',
            prefix='backbone')),
    neck=dict(in_channels=768))
# mmpretrain's ViT fine-tuning recipes: layer decay 0.65, gradient norm
# clipped at 1 (its CLIP ViT recipe).
optim_wrapper = dict(
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        custom_keys={
            '.cls_token': dict(decay_mult=0.),
            '.pos_embed': dict(decay_mult=0.)
        }))
