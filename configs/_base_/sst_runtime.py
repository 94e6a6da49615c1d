_base_ = './default_runtime.py'
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    dict(type='LabelGraphHook')
]
