# PASCAL VOC 2007: trainval with hidden labels, evaluated on test.
# difficult='negative' is the published setting; 'ignore' is mmpretrain's.
_base_ = './partial_448.py'
data_root = 'data/VOCdevkit/VOC2007'
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='VOC2007MultiLabelDataset',
            data_root=data_root,
            split='trainval',
            difficult='negative')))
val_dataloader = dict(
    dataset=dict(
        type='VOC2007MultiLabelDataset',
        data_root=data_root,
        split='test',
        difficult='negative'))
test_dataloader = val_dataloader
