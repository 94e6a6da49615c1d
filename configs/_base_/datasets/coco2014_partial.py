# MS-COCO 2014: train2014 with hidden labels, evaluated on val2014.
_base_ = './partial_448.py'
data_root = 'data/coco'
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CocoMultiLabelDataset',
            data_root=data_root,
            ann_file='annotations/instances_train2014.json',
            data_prefix='train2014')))
val_dataloader = dict(
    dataset=dict(
        type='CocoMultiLabelDataset',
        data_root=data_root,
        ann_file='annotations/instances_val2014.json',
        data_prefix='val2014'))
test_dataloader = val_dataloader
