# Partial-BCE baseline on the generated demo dataset, 10% known labels.
_base_ = [
    './_base_/models/demo_resnet18_partial_bce.py',
    './_base_/datasets/demo_partial.py', './_base_/schedules/demo_adam_8e.py',
    './_base_/default_runtime.py'
]
default_hooks = dict(logger=dict(interval=20))
