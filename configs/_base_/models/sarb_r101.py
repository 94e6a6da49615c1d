# SARB (docs/method.md): the baseline's ResNet-101 (stem and stages 1-3
# frozen, ImageNet weights) -> semantic decoupling neck -> graph head with
# ILRB and PLRB. Leaf configs set num_classes and the word-vector file.
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
        type='SARBHead',
        num_classes=80,
        in_channels=1024,
        out_channels=1024,
        num_steps=3,
        num_prototypes=10,
        blend_start_epoch=5,
        loss=dict(type='PartialBCELoss'),
        contrastive_loss=dict(
            type='CategoryContrastiveLoss', loss_weight=0.05)))
