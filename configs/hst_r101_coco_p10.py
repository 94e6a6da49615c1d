# HST, ResNet-101, coco2014, 10% known labels (published recipe).
_base_ = [
    './_base_/models/hst_r101.py', './_base_/datasets/coco2014_partial.py',
    './_base_/schedules/adam_20e.py', './_base_/hst_runtime.py'
]
model = dict(
    neck=dict(
        num_classes=80, word_vectors='data/word_vectors/coco_glove_300d.npy'),
    head=dict(num_classes=80))
# The shipped HST script's batch: 32 images per step.
train_dataloader = dict(batch_size=32, dataset=dict(known_ratio=0.1))
auto_scale_lr = dict(base_batch_size=32)
