# DSRB (docs/method.md): SARB's model, its neck also giving where each
# class's attention-weighted map peaks, and a head whose prototype-level
# blending uses one prototype per spatial quadrant (top-1 unknown class).
_base_ = './sarb_r101.py'
model = dict(
    neck=dict(with_peak_quadrants=True),
    head=dict(type='DSRBHead', num_prototypes=4, top_k=1))
