_base_ = './dsrb_r101_voc_p10.py'
train_dataloader = dict(dataset=dict(known_ratio=0.4))
