# Demo DSRB: the demo SARB's backbone and neck (with the peak quadrants)
# and DSRB's head at reduced widths; embeddings are learned.
_base_ = './demo_resnet18_sarb.py'
model = dict(
    neck=dict(with_peak_quadrants=True),
    head=dict(
        _delete_=True,
        type='DSRBHead',
        num_classes=12,
        in_channels=256,
        out_channels=256,
        top_k=1,
        blend_start_epoch=2,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05)))
