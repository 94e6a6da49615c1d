# Demo SARB: the demo baseline's backbone with SARB's neck and head at
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
        type='SARBHead',
        num_classes=12,
        in_channels=256,
        out_channels=256,
        num_prototypes=10,
        blend_start_epoch=2,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05)))
