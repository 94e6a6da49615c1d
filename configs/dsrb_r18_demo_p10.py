# DSRB on the generated demo dataset, 10% known labels: the demo SARB with
# the neck's peak quadrants and DSRB's head (one prototype per spatial
# quadrant, top-1 unknown class); blending from epoch 2, quadrant
# prototypes recomputed every 2 epochs.
_base_ = './sarb_r18_demo_p10.py'
model = dict(
    neck=dict(with_peak_quadrants=True),
    head=dict(type='DSRBHead', num_prototypes=4, top_k=1))
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    dict(type='QuadrantPrototypeHook', interval=2)
]
