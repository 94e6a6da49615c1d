# SARB (SPEC section 2): ResNet-101 (stem and stages 1-3 frozen) ->
# semantic decoupling neck -> graph head with ILRB and PLRB.
# Leaf configs set num_classes and the word-vector file.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=101,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=3,
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet101_8xb32_in1k_20210831-539c63f8.pth',
            prefix='backbone')),
    neck=dict(
        type='SemanticDecouplingNeck',
        num_classes=80,
        in_channels=2048,
        feat_channels=1024,
        embed_dims=300,
        attn_channels=512,
        word_vectors=None),
    head=dict(
        type='SARBHead',
        num_classes=80,
        in_channels=1024,
        out_channels=1024,
        num_steps=3,
        num_prototypes=10,
        blend_start_epoch=5,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(type='CategoryContrastiveLoss',
                              loss_weight=0.05)))
