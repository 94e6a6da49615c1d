# Visual Genome VG-200 (the authors' 200-class split).
_base_ = './partial_448.py'
data_root = 'data/VG'
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='VG200MultiLabelDataset', data_root=data_root,
            split='train')))
val_dataloader = dict(
    dataset=dict(
        type='VG200MultiLabelDataset', data_root=data_root, split='test'))
test_dataloader = val_dataloader
