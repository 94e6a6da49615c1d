# Demo DSRB: the demo SARB with the neck's peak quadrants and DSRB's head
# (one prototype per spatial quadrant, top-1 unknown class).
_base_ = './demo_resnet18_sarb.py'
model = dict(
    neck=dict(with_peak_quadrants=True),
    head=dict(type='DSRBHead', num_prototypes=4, top_k=1))
