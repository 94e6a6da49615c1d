# Shared data settings of the published runs (docs/method.md); the dataset
# files below fill in the dataset type and paths.
crop_sizes = (512, 448, 384, 320, 256)
# 'LoadImageFromFile' builds sarb_mm's CheckedLoadImageFromFile (the
# configs import sarb_mm), under the name mmpretrain's tools look for.
train_pipeline = [
    # Augmentation draws from (seed, epoch, image index), whichever worker
    # loads the image: a run resumed mid-epoch repeats them exactly.
    dict(type='SeedFromSample'),
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=(512, 512),
        interpolation='bicubic',
        backend='pillow'),
    # A square crop whose side is drawn uniformly from crop_sizes.
    dict(
        type='RandomChoice',
        transforms=[[dict(type='RandomCrop', crop_size=size)]
                    for size in crop_sizes]),
    dict(
        type='Resize',
        scale=(448, 448),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=(448, 448),
        interpolation='bicubic',
        backend='pillow'),
    # VOC with difficult='ignore': the metric leaves these entries out.
    dict(type='PackInputs', algorithm_keys=('gt_label_difficult', )),
]
# tools/test.py --tta: every image and its mirror image, scores averaged
# and labels taken from the average.
tta_model = dict(type='MultiLabelAverageScoreTTA')
tta_pipeline = [
    *test_pipeline[:-1],
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=1.),
            dict(type='RandomFlip', prob=0.)
        ], [test_pipeline[-1]]]),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    # As the published loader: the last incomplete batch is dropped (every
    # step sees a full batch for ILRB's pairs and the contrastive term).
    drop_last=True,
    # Workers restart every epoch and are seeded from (seed, epoch, rank), so
    # augmentations differ between epochs and a resumed run is exact.
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='PartialLabelDataset',
        known_ratio=0.1,
        seed=0,
        # On the wrapper, where mmpretrain's tools (verify_dataset.py) look.
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    # Every test image is evaluated once (no drop_last); mmengine trims the
    # distributed sampler's padding before computing the metric.
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='InterpolatedMultiLabelMetric')
test_evaluator = val_evaluator
