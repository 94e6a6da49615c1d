# DSRB (docs/method.md): SARB's ResNet-101 and neck, the neck also giving
# where each class's attention-weighted map peaks, and a head whose
# prototype-level blending uses one prototype per spatial quadrant.
_base_ = './sarb_r101.py'
model = dict(
    neck=dict(with_peak_quadrants=True),
    head=dict(
        _delete_=True,
        type='DSRBHead',
        num_classes=80,
        in_channels=1024,
        out_channels=1024,
        num_steps=3,
        top_k=1,
        blend_start_epoch=5,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05)))
