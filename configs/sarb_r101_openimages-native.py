# SARB, ResNet-101, OpenImages V6 (9 M images, 600 boxable classes) with
# its own partial labels; docs/scaling.md explains the memory settings.
_base_ = [
    './_base_/models/sarb_r101.py', './_base_/datasets/openimages_native.py',
    './_base_/schedules/adam_20e.py', './_base_/sarb_runtime.py'
]
model = dict(
    neck=dict(
        num_classes=600,
        word_vectors='data/word_vectors/openimages_glove_300d.npy'),
    head=dict(num_classes=600))
# One epoch is hours: also checkpoint every 5000 iterations (a resume
# continues at the next batch of the epoch).
default_hooks = dict(
    checkpoint=dict(interval=5000, by_epoch=False, max_keep_ckpts=3))
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    # At most 1000 known positives per class (600 x 1000 x 1024 float32 =
    # 2.3 GiB of host memory per rank at most, whatever the dataset size)
    # from 1 M of the 9 M images: the pass costs about a ninth of an epoch,
    # and every class known positive in 0.1% of the images fills its 1000.
    dict(
        type='PrototypeHook',
        interval=5,
        max_points_per_class=1000,
        max_images_per_pass=1000000)
]
