# Demo HST: the demo SARB's backbone and neck with HST's head at reduced
# widths; embeddings are learned (no GloVe file for shape names).
_base_ = './demo_resnet18_sarb.py'
model = dict(
    head=dict(
        _delete_=True,
        type='HSTHead',
        num_classes=12,
        in_channels=256,
        out_channels=256,
        pair_channels=128,
        pseudo_label_epoch=2,
        num_prototypes=10,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05)))
