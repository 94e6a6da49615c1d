# The partial-BCE baseline on the demo's JSON Lines labels (see
# sarb_r18_demo-jsonl.py).
_base_ = [
    './_base_/models/demo_resnet18_partial_bce.py',
    './_base_/datasets/demo_jsonl_partial.py',
    './_base_/schedules/demo_adam_8e.py', './_base_/default_runtime.py'
]
default_hooks = dict(logger=dict(interval=20))
