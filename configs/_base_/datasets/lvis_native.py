# LVIS v1 (1203 classes on COCO 2017 images), natively partial: per image,
# annotated classes are positive, neg_category_ids negative, classes in
# not_exhaustive_category_ids without an annotation and all others unknown.
_base_ = './partial_448.py'
data_root = 'data/lvis'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LVISPartialDataset',
        data_root=data_root,
        ann_file='annotations/lvis_v1_train.json',
        data_prefix='',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LVISPartialDataset',
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix='',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
