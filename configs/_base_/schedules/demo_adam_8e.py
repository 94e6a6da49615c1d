# CPU demo schedule: from scratch, so a larger lr than the published 1e-5.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))
param_scheduler = dict(type='StepLR', by_epoch=True, step_size=6, gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=2)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
