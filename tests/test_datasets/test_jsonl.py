import itertools
import json
import os
import os.path as osp
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS

import sarb_mm  # noqa: F401
from sarb_mm.datasets import (JsonLinesPartialDataset, PartialLabelDataset,
                              make_jsonl_demo, make_partial_labels)
from sarb_mm.datasets.partial_wrapper import full_label_matrix
from sarb_mm.engine.hooks import PrototypeHook
from sarb_mm.models.losses.contrastive import category_contrastive_loss
from sarb_mm.utils.errors import InvalidInputError
from tests.log_capture import collect_warnings
from tests.tiny_sarb import build_tiny_sarb
from .fixtures import write_jpeg

CLASSES = ['cat', 'dog', 'car', 'tree']
# Two groups of images: the first was only ever checked for cat and dog,
# the second only for dog, car and tree (so cat is unknown for all of it).
RECORDS = [
    dict(img='images/a/0.jpg', pos=['cat', 'dog']),
    dict(img='images/a/1.jpg', pos=['cat'], neg=['dog']),
    dict(img='images/a/2.jpg', pos=['dog'], neg=['cat']),
    dict(img='images/a/3.jpg', neg=['cat', 'dog']),
    dict(img='images/b/4.jpg', pos=['dog', 'car'], neg=['tree']),
    dict(img='images/b/5.jpg', pos=['tree'], neg=['dog', 'car']),
    dict(img='images/b/6.jpg', pos=['dog', 'car', 'tree']),
    dict(img='images/b/7.jpg', neg=['dog', 'car', 'tree']),
]

_LOGGERS = itertools.count()


def fresh_warnings():
    """Warnings of a new MMLogger: ``collect_warnings`` only sees them while
    its logger is the latest one created, so each use gets a new name."""
    return collect_warnings(f'test-jsonl-{next(_LOGGERS)}')


def expected_matrix(records, classes=CLASSES):
    """The -1/0/1 matrix of ``records``, by a plain loop."""
    matrix = np.zeros((len(records), len(classes)), dtype=np.int8)
    for i, record in enumerate(records):
        for name in record.get('pos', []):
            matrix[i, classes.index(name)] = 1
        for name in record.get('neg', []):
            matrix[i, classes.index(name)] = -1
    return matrix


def write_jsonl(root,
                records=RECORDS,
                classes=CLASSES,
                lines=None,
                ann_file='train.jsonl',
                images=True):
    """Write classes.txt, the JSON Lines file and the images."""
    with open(osp.join(root, 'classes.txt'), 'w') as f:
        f.write('\n'.join(classes) + '\n')
    if lines is None:
        lines = [json.dumps(r) for r in records]
    with open(osp.join(root, ann_file), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    if images:
        for i, record in enumerate(records):
            write_jpeg(
                osp.join(root, record['img']), (30 * i, 100, 60), size=32)
    return osp.join(root, ann_file)


def build(root, **kwargs):
    return JsonLinesPartialDataset(data_root=str(root), **kwargs)


def test_samples_carry_the_known_labels_of_the_file(tmp_path):
    # A BOM and a blank line are accepted.
    lines = [json.dumps(r) for r in RECORDS]
    lines = ['\ufeff' + lines[0]] + lines[1:4] + [''] + lines[4:]
    write_jsonl(str(tmp_path), lines=lines)
    dataset = DATASETS.build(
        dict(
            type='JsonLinesPartialDataset',
            data_root=str(tmp_path),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(
                    type='PackInputs', algorithm_keys=('gt_label_difficult', ))
            ]))
    expected = expected_matrix(RECORDS)
    assert len(dataset) == len(RECORDS)
    assert dataset.metainfo['classes'] == tuple(CLASSES)
    np.testing.assert_array_equal(dataset.known_label_matrix(), expected)
    # What the partial-label code reads: unknown entries stay 0, not -1.
    np.testing.assert_array_equal(full_label_matrix(dataset), expected)
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        np.testing.assert_array_equal(sample.gt_score.numpy(), expected[idx])
        assert sample.gt_label.tolist() == np.flatnonzero(
            expected[idx] > 0).tolist()
        assert list(sample.gt_label_difficult) == np.flatnonzero(
            expected[idx] == 0).tolist()
        assert sample.img_path == osp.join(str(tmp_path), RECORDS[idx]['img'])


def test_classes_without_known_positive_are_warned(tmp_path):
    records = [dict(img='images/a/0.jpg', pos=['cat'], neg=['car'])]
    write_jsonl(str(tmp_path), records=records)
    with fresh_warnings() as seen:
        build(tmp_path)
    assert len(seen) == 1
    assert '3 of 4 classes have no known positive: dog, car, tree' in seen[0]


def _line_with(**fields):
    return json.dumps(fields)


BAD_LINES = [
    (_line_with(img='images/a/1.jpg', pos=['cat', 'horse']),
     r'line 2, field "pos": the class \'horse\' is not in the class file'),
    (_line_with(img='images/a/1.jpg', pos=['dog'], neg=['car', 'dog']),
     r'line 2: the class \'dog\' is in both "pos" and "neg" '
     r'\(contradictory labels\)'),
    (_line_with(pos=['dog']),
     r'line 2: the field "img" \(the image path\) is missing'),
    (_line_with(img='', pos=['dog']), r'line 2: the field "img" is \'\''),
    (_line_with(img='images/a/0.jpg', pos=['dog']),
     r"line 2 lists the image 'images/a/0.jpg' again; it was first listed "
     r".*line 1"),
    (_line_with(img='./images/a/0.jpg'), r'line 2 lists the image'),
    (_line_with(img='images/a/9.jpg', pos=['dog']),
     r"line 2: the image 'images/a/9.jpg' is not found at .*9.jpg'.*"
     r"missing_images='skip'"),
    (_line_with(img='images/a/1.jpg',
                negs=['dog']), r'line 2 has the field\(s\) \[\'negs\'\]'),
    (_line_with(img='images/a/1.jpg', pos='dog'),
     r'line 2: the field "pos" is \'dog\'; expected a list'),
    ('{"img": "images/a/1.jpg", "pos": ["dog"]', r'line 2 is not valid JSON'),
    ('["images/a/1.jpg"]', r'line 2 holds a JSON list, not an object'),
    ('{"img": "images/a/1.jpg", "img": "images/a/2.jpg"}',
     r'line 2 has the field \'img\' twice'),
    (_line_with(img='../outside.jpg'), r'line 2: the image is '
     r"'../outside.jpg', which leaves the data root"),
]


@pytest.mark.parametrize('line, match', BAD_LINES)
def test_bad_lines_name_file_line_and_field(tmp_path, line, match):
    first = json.dumps(RECORDS[0])
    ann = write_jsonl(str(tmp_path), lines=[first, line])
    with pytest.raises(InvalidInputError) as err:
        build(tmp_path)
    message = str(err.value)
    assert message.startswith(f'JSON Lines file {ann!r}, line 2')
    assert re.search(match, message), message


def test_bad_class_file_and_empty_file(tmp_path):
    write_jsonl(str(tmp_path), classes=['cat', 'dog', 'cat'])
    with pytest.raises(
            InvalidInputError,
            match=r"lists the class 'cat' "
            r'twice, on lines 1 and 3'):
        build(tmp_path)
    write_jsonl(str(tmp_path), lines=['', ''])
    with pytest.raises(InvalidInputError, match='lists no image'):
        build(tmp_path)
    with pytest.raises(FileNotFoundError, match='Class file not found'):
        build(tmp_path, class_file='labels.txt')


def test_missing_images_can_be_skipped_or_left_unchecked(tmp_path):
    write_jsonl(str(tmp_path))
    missing = osp.join(str(tmp_path), RECORDS[2]['img'])
    os.remove(missing)
    with fresh_warnings() as seen:
        dataset = build(tmp_path, missing_images='skip')
    assert len(dataset) == len(RECORDS) - 1
    kept = RECORDS[:2] + RECORDS[3:]
    np.testing.assert_array_equal(dataset.known_label_matrix(),
                                  expected_matrix(kept))
    assert any('1 listed image(s) are not in the image directory' in m
               for m in seen)
    assert len(build(tmp_path, missing_images='unchecked')) == len(RECORDS)
    with pytest.raises(InvalidInputError, match='missing_images must be'):
        build(tmp_path, missing_images='ignore')


def test_classes_can_be_renamed_with_metainfo(tmp_path):
    write_jsonl(str(tmp_path))
    names = ('Cat', 'Dog', 'Car', 'Tree')
    dataset = build(tmp_path, metainfo=dict(classes=names))
    assert dataset.metainfo['classes'] == names
    with pytest.raises(InvalidInputError, match='3 class names were given'):
        build(tmp_path, metainfo=dict(classes=names[:3]))


def test_partial_label_dataset_hides_only_known_labels(tmp_path):
    write_jsonl(str(tmp_path))
    native = expected_matrix(RECORDS)
    cfg = dict(type='JsonLinesPartialDataset', data_root=str(tmp_path))
    # Everything kept: exactly the file's labels, unknowns included.
    whole = PartialLabelDataset(cfg, known_ratio=1.0)
    np.testing.assert_array_equal(whole.partial_labels, native)
    half = PartialLabelDataset(cfg, known_ratio=0.5, seed=3)
    np.testing.assert_array_equal(half.partial_labels,
                                  make_partial_labels(native, 0.5, seed=3))
    assert not (half.partial_labels[native == 0]).any()
    assert (half.partial_labels[half.partial_labels != 0] == native[
        half.partial_labels != 0]).all()
    assert 0 < np.count_nonzero(half.partial_labels) < np.count_nonzero(native)
    # The error for a draw that keeps nothing counts the known labels only
    # (20 of the 32 entries are known).
    with pytest.raises(
            InvalidInputError,
            match='About 0.02 entries were expected to stay known'):
        PartialLabelDataset(cfg, known_ratio=1e-3)
    # Samples of the wrapper carry its labels, never the file's hidden ones.
    sample = half.get_data_info(4)
    np.testing.assert_array_equal(sample['gt_score'], half.partial_labels[4])
    assert 'gt_label_difficult' not in sample


def test_make_jsonl_demo(tmp_path):
    root = str(tmp_path / 'demo')
    info = make_jsonl_demo(
        root, known_ratio=0.4, num_train=12, num_val=4, image_size=16)
    train = JsonLinesPartialDataset(data_root=root, ann_file='train.jsonl')
    val = JsonLinesPartialDataset(data_root=root, ann_file='val.jsonl')
    assert (len(train), len(val)) == (12, 4)
    # The known entries agree with the demo's COCO labels.
    coco = DATASETS.build(
        dict(
            type='CocoMultiLabelDataset',
            data_root=root,
            ann_file='annotations/instances_train.json',
            data_prefix='train'))
    assert train.metainfo['classes'] == coco.metainfo['classes']
    full = full_label_matrix(coco)
    known = train.known_label_matrix()
    assert (known[known != 0] == full[known != 0]).all()
    assert (known != 0).any(axis=1).all()  # each image verified for some
    assert 0 < (known != 0).mean() < 1
    assert info['known_ratio']['train'] == pytest.approx((known != 0).mean())
    # The validation split is complete by default.
    np.testing.assert_array_equal(
        val.known_label_matrix(),
        full_label_matrix(
            DATASETS.build(
                dict(
                    type='CocoMultiLabelDataset',
                    data_root=root,
                    ann_file='annotations/instances_val.json',
                    data_prefix='val'))))
    # Same arguments, same files.
    before = open(info['ann_files']['train']).read()
    make_jsonl_demo(
        root, known_ratio=0.4, num_train=12, num_val=4, image_size=16)
    assert open(info['ann_files']['train']).read() == before
    # A directory the demo generator does not own is never written to.
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'train.jsonl').write_text('mine\n')
    with pytest.raises(FileExistsError, match='Refusing to write'):
        make_jsonl_demo(str(other), num_train=2, num_val=1, image_size=16)
    assert (other / 'train.jsonl').read_text() == 'mine\n'


# Item: co-occurrence, prototypes and the contrastive term use the known
# entries only, on a dataset where cat is never known in the second group.


def _grouped_dataset(tmp_path):
    write_jsonl(str(tmp_path))
    return JsonLinesPartialDataset(
        data_root=str(tmp_path),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])


def _runner(model, dataset, loader=()):
    loader = _Loader(loader, dataset)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return SimpleNamespace(
        model=model,
        epoch=5,
        max_epochs=20,
        optim_wrapper=SimpleNamespace(optimizer=optimizer),
        train_dataloader=loader,
        logger=MMLogger.get_instance('jsonl-proto-test'))


class _Loader(list):

    def __init__(self, batches, dataset):
        super().__init__(batches)
        self.dataset = dataset


def test_cooccurrence_counts_known_positives_only(tmp_path):
    dataset = _grouped_dataset(tmp_path)
    model = build_tiny_sarb(len(CLASSES))
    PrototypeHook().before_train(_runner(model, dataset))
    labels = expected_matrix(RECORDS)
    expected = np.zeros((4, 4))
    for i in range(4):
        with_i = labels[:, i] == 1
        for j in range(4):
            if with_i.any():
                expected[i, j] = (with_i & (labels[:, j] == 1)).sum() / \
                    with_i.sum()
    # e.g. cat is a known positive twice, both times with dog known: 1/2
    # of the cat rows have dog too (image 0), the unknown rows count nowhere.
    assert expected[0, 1] == 0.5 and expected[0, 2] == 0
    torch.testing.assert_close(model.head.cooccurrence,
                               torch.tensor(expected, dtype=torch.float32))


def test_prototypes_come_from_known_positives_only(tmp_path):
    torch.manual_seed(0)
    dataset = _grouped_dataset(tmp_path)
    model = build_tiny_sarb(len(CLASSES), num_prototypes=1)
    batches = [
        pseudo_collate([dataset[i] for i in range(j, j + 3)]) for j in (0, 3)
    ] + [pseudo_collate([dataset[6], dataset[7]])]
    labels = expected_matrix(RECORDS)

    hook = PrototypeHook(seed=0)
    features, keys = hook._collect_positives(model, batches)
    np.testing.assert_array_equal(keys.numpy(), np.argwhere(labels > 0))

    # With one prototype per class, K-means gives the mean feature of the
    # class's known positives: a plain mean over the numpy selection.
    model.eval()
    with torch.no_grad():
        all_features = torch.cat([
            model.extract_feat(
                model.data_preprocessor(batch, False)['inputs'])[-1]
            for batch in batches
        ])
    model.train()
    hook.update_prototypes(_runner(model, dataset, batches), 5)
    has_positive = (labels > 0).any(axis=0)
    assert model.head.prototype_mask.flatten().tolist() == \
        has_positive.tolist()
    for cls in range(len(CLASSES)):
        rows = np.flatnonzero(labels[:, cls] > 0)
        mean = all_features[rows, cls].mean(0)
        torch.testing.assert_close(
            model.head.prototypes[cls].reshape(-1), mean, atol=1e-5, rtol=1e-4)


def test_contrastive_term_ignores_unknown_entries(tmp_path):
    dataset = _grouped_dataset(tmp_path)
    targets = torch.stack([
        torch.as_tensor(dataset.get_data_info(i)['gt_score'])
        for i in range(len(dataset))
    ])
    features = torch.randn(
        len(dataset),
        len(CLASSES),
        5,
        generator=torch.Generator().manual_seed(1))
    # Features at unknown entries change nothing.
    noisy = torch.where((targets == 0).unsqueeze(-1),
                        torch.randn_like(features) * 10, features)
    first = category_contrastive_loss(features, targets,
                                      torch.Generator().manual_seed(2))
    second = category_contrastive_loss(noisy, targets,
                                       torch.Generator().manual_seed(2))
    torch.testing.assert_close(first, second)

    # Images 1, 3, 5, 7: no class has two known positives, so every term
    # is kept; a plain loop over the known pairs gives the value.
    batch = [1, 3, 5, 7]
    labels = expected_matrix(RECORDS)[batch]
    feats = F.normalize(features[batch], dim=-1).numpy().astype(np.float64)
    terms = []
    for i in range(len(batch)):
        for j in range(i + 1, len(batch)):
            for c in range(len(CLASSES)):
                a, b = labels[i, c], labels[j, c]
                if a == 0 or b == 0:
                    continue
                cosine = float(feats[i, c] @ feats[j, c])
                terms.append(1 - cosine if a > 0 and b > 0 else 1 + cosine)
    assert len(terms) == 9
    value = category_contrastive_loss(features[batch], targets[batch])
    assert value.item() == pytest.approx(np.mean(terms), rel=1e-5)
