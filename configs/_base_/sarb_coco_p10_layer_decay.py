# What the ViT / Swin / ConvNeXt COCO 10% configs share: sarb_r101_coco_p10
# with the AdamW + layer-wise lr decay schedule. Leaf configs replace the
# backbone and set neck.in_channels and the decay rate.
_base_ = [
    './models/sarb_r101.py', './datasets/coco2014_partial.py',
    './schedules/adamw_layer_decay_20e.py', './sarb_runtime.py'
]
model = dict(
    neck=dict(
        num_classes=80, word_vectors='data/word_vectors/coco_glove_300d.npy'),
    head=dict(num_classes=80))
train_dataloader = dict(dataset=dict(known_ratio=0.1))
