# HST (heterogeneous semantic transfer): SARB's ResNet-101 and neck (stem
# and stages 1-3 frozen, ImageNet weights) -> semantic decoupling neck ->
# graph head with the pair co-occurrence branch, class prototypes and
# learnable margins (the shipped script's weights). Leaf configs set
# num_classes and the word-vector file.
_base_ = './sarb_r101.py'
model = dict(
    head=dict(
        _delete_=True,
        type='HSTHead',
        num_classes=80,
        in_channels=1024,
        out_channels=1024,
        pair_channels=512,
        num_steps=3,
        pseudo_label_epoch=5,
        num_prototypes=10,
        intra_margin=1.0,
        learn_intra_margin=True,
        inter_margin=1.0,
        learn_inter_margin=True,
        loss=dict(type='PartialBCELoss'),
        intra_loss_weight=0.1,
        pair_loss_weight=10.0,
        inter_loss_weight=0.1,
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05),
        prototype_loss_weight=0.05))
