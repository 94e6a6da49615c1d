# Runtime of DSRB runs: the default one plus QuadrantPrototypeHook
# (co-occurrence before training, quadrant prototypes from the blending
# epoch every 5 epochs, training progress for the head).
_base_ = './default_runtime.py'
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    dict(type='QuadrantPrototypeHook', interval=5)
]
