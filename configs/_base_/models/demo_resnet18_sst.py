# Demo SST: the demo baseline's backbone with SST's neck and head at
# reduced widths; embeddings are learned (no GloVe file for shape names).
_base_ = './demo_resnet18_partial_bce.py'
model = dict(
    neck=dict(
        _delete_=True,
        type='SemanticDecouplingNeck',
        num_classes=12,
        in_channels=512,
        feat_channels=256,
        embed_dims=64,
        attn_channels=128,
        word_vectors=None),
    head=dict(
        _delete_=True,
        type='SSTHead',
        num_classes=12,
        in_channels=256,
        out_channels=256,
        pair_channels=128,
        pseudo_label_epoch=2,
        bank_size=100,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05)))
