# Demo baseline: ResNet-18 from scratch (no download) + GAP + linear head.
# Stage 4 keeps stride 1 so 64 px inputs give a 4x4 map, like SARB's demo.
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
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=12,
        in_channels=512,
        thr=0.5,
        loss=dict(type='PartialBCELoss')))
