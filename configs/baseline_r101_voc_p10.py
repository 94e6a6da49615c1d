# Partial-BCE baseline (no blending) on voc2007 with 10% known labels.
# Other proportions: --cfg-options train_dataloader.dataset.known_ratio=0.5
_base_ = [
    './_base_/models/resnet101_partial_bce.py',
    './_base_/datasets/voc2007_partial.py', './_base_/schedules/adam_20e.py',
    './_base_/default_runtime.py'
]
model = dict(head=dict(num_classes=20))
