# SST (structured semantic transfer): the baseline's ResNet-101 (stem and
# stages 1-3 frozen, ImageNet weights) -> semantic decoupling neck -> graph
# head with the pair co-occurrence branch, the feature bank and pseudo
# labels (the shipped script's weights and margins). Leaf configs set
# num_classes and the word-vector file.
_base_ = './resnet101_partial_bce.py'
model = dict(
    neck=dict(
        _delete_=True,
        type='SemanticDecouplingNeck',
        num_classes=80,
        in_channels=2048,
        feat_channels=1024,
        attn_channels=512,
        word_vectors=None,
        # the published ResNet-101 ends with AvgPool2d(2, stride=2)
        input_pool=2),
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
