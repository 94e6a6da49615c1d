# Published recipe (docs/protocol.md): batch 8 on one GPU, 20 epochs, Adam
# lr 1e-5 / weight decay 5e-4, lr x 0.1 every 10 epochs.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-5, weight_decay=5e-4))
param_scheduler = dict(type='StepLR', by_epoch=True, step_size=10, gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `--auto-scale-lr` scales lr linearly with the total batch size.
auto_scale_lr = dict(base_batch_size=8, enable=False)
