# DSRB on the generated demo dataset, 10% known labels: blending from
# epoch 2, quadrant prototypes recomputed every 2 epochs.
_base_ = [
    './_base_/models/demo_resnet18_dsrb.py',
    './_base_/datasets/demo_partial.py', './_base_/schedules/demo_adam_8e.py',
    './_base_/default_runtime.py'
]
default_hooks = dict(logger=dict(interval=20))
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    dict(type='QuadrantPrototypeHook', interval=2)
]
