# Demo SARB: the demo baseline's backbone with SARB's neck and head at
# reduced widths; embeddings are learned (no GloVe file for shape names).
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=18,
        out_indices=(3, ),
        strides=(1, 2, 2, 1),
        style='pytorch'),
    neck=dict(
        type='SemanticDecouplingNeck',
        num_classes=12,
        in_channels=512,
        feat_channels=256,
        embed_dims=64,
        attn_channels=128,
        word_vectors=None),
    head=dict(
        type='SARBHead',
        num_classes=12,
        in_channels=256,
        out_channels=256,
        num_prototypes=10,
        blend_start_epoch=2,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(type='CategoryContrastiveLoss',
                              loss_weight=0.05)))
