# The generated demo images with genuinely partial labels in JSON Lines:
# each training image verified for a random subset of the classes, every
# other class unknown; validation labels complete. Make the files first:
#   python tools/make_demo_dataset.py --out data/demo_jsonl --jsonl 0.3
_base_ = ['./demo_partial.py']
data_root = 'data/demo_jsonl'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='JsonLinesPartialDataset',
        data_root=data_root,
        ann_file='train.jsonl',
        class_file='classes.txt',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='JsonLinesPartialDataset',
        data_root=data_root,
        ann_file='val.jsonl',
        class_file='classes.txt',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
