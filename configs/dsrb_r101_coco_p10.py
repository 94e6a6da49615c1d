# DSRB, ResNet-101, coco2014, 10% known labels (published recipe).
_base_ = [
    './_base_/models/dsrb_r101.py', './_base_/datasets/coco2014_partial.py',
    './_base_/schedules/adam_20e.py', './_base_/dsrb_runtime.py'
]
model = dict(
    neck=dict(
        num_classes=80, word_vectors='data/word_vectors/coco_glove_300d.npy'),
    head=dict(num_classes=80))
train_dataloader = dict(dataset=dict(known_ratio=0.1))
