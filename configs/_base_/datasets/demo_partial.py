# Generated demo dataset (12 shape classes, 64 px), created under data_root
# on first use. Pipelines scale the published ones down to 64 px.
data_root = 'data/demo'
# Generation parameters, given to both datasets: whichever is built first
# generates both splits, and an existing dataset is never regenerated (a
# mismatch is only warned about). Override them for both datasets, e.g.
# train_dataloader.dataset.dataset.num_train=500 and
# val_dataloader.dataset.num_train=500, or delete data_root to regenerate.
num_train = 2000
num_val = 500
image_size = 64
demo_seed = 0
crop_sizes = (72, 64, 56)
# 'LoadImageFromFile' builds sarb_mm's CheckedLoadImageFromFile (the
# configs import sarb_mm), under the name mmpretrain's tools look for.
train_pipeline = [
    # Augmentation draws from (seed, epoch, image index), whichever worker
    # loads the image: a run resumed mid-epoch repeats them exactly.
    dict(type='SeedFromSample'),
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=(72, 72),
        interpolation='bicubic',
        backend='pillow'),
    dict(
        type='RandomChoice',
        transforms=[[dict(type='RandomCrop', crop_size=size)]
                    for size in crop_sizes]),
    dict(
        type='Resize',
        scale=(64, 64),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=(64, 64),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='PackInputs'),
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
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='PartialLabelDataset',
        known_ratio=0.1,
        seed=0,
        # On the wrapper, where mmpretrain's tools (verify_dataset.py) look.
        pipeline=train_pipeline,
        dataset=dict(
            type='SyntheticCocoDataset',
            data_root=data_root,
            split='train',
            num_train=num_train,
            num_val=num_val,
            image_size=image_size,
            seed=demo_seed)))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='SyntheticCocoDataset',
        data_root=data_root,
        split='val',
        num_train=num_train,
        num_val=num_val,
        image_size=image_size,
        seed=demo_seed,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='InterpolatedMultiLabelMetric')
test_evaluator = val_evaluator
