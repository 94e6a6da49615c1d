# Ablation: SARB with prototype-level blending only (no ILRB).
_base_ = './sarb_r101_coco_p10.py'
model = dict(head=dict(use_ilrb=False))
