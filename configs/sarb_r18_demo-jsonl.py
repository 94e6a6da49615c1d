# SARB on the demo images with genuinely partial JSON Lines labels (make
# them with tools/make_demo_dataset.py --out data/demo_jsonl --jsonl 0.3);
# otherwise as sarb_r18_demo_p10.py.
_base_ = [
    './_base_/models/demo_resnet18_sarb.py',
    './_base_/datasets/demo_jsonl_partial.py',
    './_base_/schedules/demo_adam_8e.py', './_base_/default_runtime.py'
]
default_hooks = dict(logger=dict(interval=20))
custom_hooks = [
    dict(type='PartialLabelHook'),
    dict(type='EpochSeedHook'),
    dict(type='PrototypeHook', interval=2)
]
