# SST (structured semantic transfer): SARB's ResNet-101 and neck (stem and
# stages 1-3 frozen, ImageNet weights) -> semantic decoupling neck -> graph
# head with the pair co-occurrence branch, the feature bank and pseudo
# labels (the shipped script's weights and margins). Leaf configs set
# num_classes and the word-vector file.
_base_ = './sarb_r101.py'
model = dict(
    head=dict(
        _delete_=True,
        type='SSTHead',
        num_classes=80,
        in_channels=1024,
        out_channels=1024,
        pair_channels=512,
        num_steps=3,
        pseudo_label_epoch=5,
        initial_margin=0.95,
        margin_step=0.025,
        final_margin=0.75,
        bank_size=100,
        loss=dict(type='PartialBCELoss'),
        intra_loss_weight=1.0,
        pair_loss_weight=10.0,
        inter_loss_weight=1.0,
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05)))
