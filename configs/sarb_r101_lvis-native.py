# SARB, ResNet-101, LVIS v1 (100 k images, 1203 classes) with its own
# partial labels; docs/scaling.md explains the memory settings.
_base_ = [
    './_base_/models/sarb_r101.py', './_base_/datasets/lvis_native.py',
    './_base_/schedules/adam_20e.py', './_base_/sarb_runtime.py'
]
model = dict(
    neck=dict(
        num_classes=1203,
        word_vectors='data/word_vectors/lvis_glove_300d.npy'),
    head=dict(num_classes=1203))
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    # Every image in the pass (100 k: rare classes keep all their
    # positives), at most 1000 known positives per class: only the frequent
    # classes are sampled; host memory per rank at most 1203 x 1000 x 1024
    # float32 = 4.6 GiB, in practice the positives kept (pages of the
    # buffer are committed as they are written).
    dict(type='PrototypeHook', interval=5, max_points_per_class=1000)
]
