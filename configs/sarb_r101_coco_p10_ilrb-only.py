# Ablation: SARB with instance-level blending only (no PLRB).
_base_ = './sarb_r101_coco_p10.py'
model = dict(head=dict(use_plrb=False))
