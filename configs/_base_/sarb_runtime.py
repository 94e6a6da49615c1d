# Runtime of SARB runs: the default one plus PrototypeHook (co-occurrence
# before training, prototypes from the blending epoch every 5 epochs,
# training progress for the head).
_base_ = './default_runtime.py'
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    dict(type='PrototypeHook', interval=5)
]
