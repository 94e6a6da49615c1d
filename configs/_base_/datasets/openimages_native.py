# OpenImages V6 human-verified image-level labels, natively partial (a
# class without a verified row for an image is unknown), 600 boxable
# classes. Make the class list once (LabelNames, one per line):
#   cut -d, -f1 annotations/oidv6-class-descriptions-boxable.csv \
#       > annotations/boxable-classes.txt
_base_ = './partial_448.py'
data_root = 'data/openimages'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OpenImagesPartialDataset',
        data_root=data_root,
        ann_file='annotations/oidv6-train-annotations-human-imagelabels.csv',
        class_file='annotations/oidv6-class-descriptions.csv',
        class_subset='annotations/boxable-classes.txt',
        data_prefix='train',
        # Parts of the 9 M images are often missing from a download.
        missing_images='skip',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OpenImagesPartialDataset',
        data_root=data_root,
        ann_file='annotations/validation-annotations-human-imagelabels.csv',
        class_file='annotations/oidv6-class-descriptions.csv',
        class_subset='annotations/boxable-classes.txt',
        data_prefix='validation',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
