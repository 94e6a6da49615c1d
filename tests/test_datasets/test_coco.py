import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import sarb_mm  # noqa: F401  (registers the datasets)
from sarb_mm.datasets import CocoMultiLabelDataset
from .fixtures import (COCO_ANNOTATIONS, COCO_CATEGORIES, COCO_CLASSES,
                       COCO_IMAGES, label_matrix, write_coco)

ANN = 'annotations/instances_train2014.json'


def build(root, **kwargs):
    return DATASETS.build(
        dict(type='CocoMultiLabelDataset', data_root=str(root), **kwargs))


def rewrite_json(root, edit):
    path = osp.join(root, ANN)
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def test_order_classes_and_labels(tmp_path):
    expected = write_coco(str(tmp_path))
    ds = build(tmp_path)

    assert isinstance(ds, CocoMultiLabelDataset)
    assert len(ds) == len(COCO_IMAGES)
    assert ds.CLASSES == COCO_CLASSES
    assert ds.metainfo['classes'] == COCO_CLASSES
    # Order of the `images` list (ids 42, 5, 17, 99), not sorted by id;
    # image 17 has no annotation and is kept with no positive.
    assert [ds.get_data_info(i)['gt_label']
            for i in range(len(ds))] == [[0, 1], [0, 3], [], [2]]
    np.testing.assert_array_equal(label_matrix(ds, 4), expected)
    assert ds.get_data_info(1)['img_path'] == osp.join(
        str(tmp_path), 'train2014', 'COCO_train2014_000000000005.jpg')
    assert ds.get_cat_ids(0) == [0, 1]


def test_prefix_forms_and_absolute_ann_file(tmp_path):
    write_coco(str(tmp_path), ann_file='ann/val.json', img_dir='val2014')
    ds = CocoMultiLabelDataset(
        data_root=str(tmp_path),
        ann_file=osp.join(str(tmp_path), 'ann', 'val.json'),
        data_prefix=dict(img_path='val2014'))
    assert len(ds) == 4
    assert ds.get_data_info(0)['img_path'] == osp.join(
        str(tmp_path), 'val2014', COCO_IMAGES[0]['file_name'])

    with pytest.raises(ValueError, match='img_path'):
        CocoMultiLabelDataset(data_root=str(tmp_path), data_prefix=dict())


def test_ten_category_generated_dataset(tmp_path):
    cats = [dict(id=100 - 3 * i, name=f'c{i}') for i in range(10)]
    images = [dict(id=i, file_name=f'{i}.jpg') for i in range(3)]
    anns = [
        dict(id=1, image_id=2, category_id=100),
        dict(id=2, image_id=0, category_id=73)
    ]
    expected = write_coco(str(tmp_path), images, anns, cats)
    ds = build(tmp_path)
    assert ds.CLASSES == tuple(f'c{i}' for i in range(9, -1, -1))
    np.testing.assert_array_equal(label_matrix(ds, 10), expected)
    assert ds.get_data_info(2)['gt_label'] == [9]
    assert ds.get_data_info(0)['gt_label'] == [0]


def test_pipeline_lazy_init_and_class_override(tmp_path):
    write_coco(str(tmp_path))
    ds = build(
        tmp_path,
        lazy_init=True,
        test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])
    assert not ds._fully_initialized
    assert len(ds) == 4  # triggers full_init
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (3, 8, 8)
    assert sample['data_samples'].gt_label.tolist() == [0, 1]

    names = ['b', 'c', 's', 't']
    assert build(tmp_path, classes=names).CLASSES == tuple(names)
    with pytest.raises(ValueError, match=r'3 class names.*4 categories'):
        build(tmp_path, metainfo=dict(classes=['a', 'b', 'c']))


def test_missing_paths(tmp_path):
    missing = tmp_path / 'nope'
    with pytest.raises(
            FileNotFoundError,
            match=re.escape(str(missing)) +
            r"(.|\n)*Expected dataset layout(.|\n)*"
            r'instances_train2014\.json'):
        build(missing)

    root = tmp_path / 'coco'
    root.mkdir()
    with pytest.raises(
            FileNotFoundError,
            match=re.escape(osp.join(str(root), ANN)) + r"(.|\n)*train2014/"):
        build(root)

    write_coco(str(root))
    shutil.rmtree(root / 'train2014')
    with pytest.raises(
            FileNotFoundError,
            match='image directory(.|\n)*' +
            re.escape(osp.join(str(root), 'train2014'))):
        build(root)


def test_malformed_json(tmp_path):
    write_coco(str(tmp_path))
    path = osp.join(str(tmp_path), ANN)
    with open(path, 'w') as f:
        f.write('{"images": [')
    with pytest.raises(ValueError, match=re.escape(path) + '.*not valid JSON'):
        build(tmp_path)


@pytest.mark.parametrize('key', ['images', 'annotations', 'categories'])
def test_missing_top_level_key(tmp_path, key):
    write_coco(str(tmp_path))
    path = rewrite_json(str(tmp_path), lambda d: d.pop(key))
    with pytest.raises(
            ValueError, match=re.escape(path) + f'.*lacks key "{key}"'):
        build(tmp_path)


def test_bad_references_and_empty(tmp_path):
    anns = COCO_ANNOTATIONS + [dict(id=77, image_id=5, category_id=3)]
    write_coco(str(tmp_path), annotations=anns)
    path = osp.join(str(tmp_path), ANN)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*annotation id 77 has category_id 3'):
        build(tmp_path)

    anns = COCO_ANNOTATIONS + [dict(id=88, image_id=1234, category_id=2)]
    write_coco(str(tmp_path), annotations=anns)
    with pytest.raises(
            ValueError,
            match=re.escape(path) +
            r'.*annotation id 88 references image_id 1234'):
        build(tmp_path)

    write_coco(str(tmp_path), images=[], annotations=[])
    with pytest.raises(ValueError, match=re.escape(path) + '.*no images'):
        build(tmp_path)

    cats = COCO_CATEGORIES + [dict(id=7, name='dup')]
    write_coco(str(tmp_path), categories=cats, annotations=[])
    with pytest.raises(ValueError, match='duplicate id 7 in "categories"'):
        build(tmp_path)


# --------------------------------------------------------------------------
# File names that leave the data root, duplicates, malformed entries
# --------------------------------------------------------------------------


def _with_file_name(root, file_name):
    images = [dict(COCO_IMAGES[0], file_name=file_name)] + COCO_IMAGES[1:]
    write_coco(str(root), images=images[1:])  # every other image on disk
    rewrite_json(str(root), lambda d: d.update(images=images))
    return osp.join(str(root), ANN)


@pytest.mark.parametrize('file_name, why', [
    ('../outside.jpg', "'..' component"),
    ('sub/../../outside.jpg', "'..' component"),
    ('..\\outside.jpg', "'..' component"),
    ('/etc/passwd', 'absolute path'),
    ('http://example.com/x.jpg', 'URL'),
])
def test_file_name_leaving_the_data_root(tmp_path, file_name, why):
    path = _with_file_name(tmp_path / 'coco', file_name)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*image id 42 has '
            r'file_name ' + re.escape(repr(file_name)) +
            r', which leaves the data root \(.*' + re.escape(why) +
            r'.*allow_outside_data_root=True'):
        build(tmp_path / 'coco')


def test_file_name_outside_allowed_explicitly(tmp_path):
    outside = tmp_path / 'elsewhere' / 'shared.jpg'
    from .fixtures import write_jpeg
    write_jpeg(str(outside))
    root = tmp_path / 'coco'
    _with_file_name(root, '../../elsewhere/shared.jpg')
    ds = build(
        root,
        allow_outside_data_root=True,
        pipeline=[
            dict(type='CheckedLoadImageFromFile'),
            dict(type='PackInputs')
        ])
    assert osp.realpath(ds.get_data_info(0)['img_path']) == str(outside)
    assert tuple(ds[0]['inputs'].shape) == (3, 8, 8)

    _with_file_name(root, str(outside))  # absolute
    ds = build(root, allow_outside_data_root=True)
    assert ds.get_data_info(0)['img_path'] == str(outside)

    with pytest.raises(TypeError, match='allow_outside_data_root'):
        build(root, allow_outside_data_root='yes')


@pytest.mark.parametrize(
    'second',
    [COCO_IMAGES[0]['file_name'], './' + COCO_IMAGES[0]['file_name']])
def test_same_file_under_two_image_ids(tmp_path, second):
    images = [COCO_IMAGES[0], dict(COCO_IMAGES[1], file_name=second)]
    write_coco(str(tmp_path), images=images, annotations=[])
    with pytest.raises(
            ValueError,
            match=r'image ids 42 and 5 both have file_name ' +
            re.escape(repr(second)) + '.*count twice'):
        build(tmp_path)


def test_two_categories_with_one_name(tmp_path):
    cats = [dict(c) for c in COCO_CATEGORIES]
    cats[2]['name'] = 'cat'  # id 90 named like id 7
    write_coco(str(tmp_path), categories=cats)
    path = osp.join(str(tmp_path), ANN)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r".*categories 7 and 90 are "
            r"both named 'cat'.*class_to_idx.*`classes`"):
        build(tmp_path)
    # Distinct names given by the user resolve it ...
    ds = build(tmp_path, classes=['bike', 'cat', 'stop', 'brush'])
    assert ds.class_to_idx == dict(bike=0, cat=1, stop=2, brush=3)
    # ... repeated ones given by the user do not.
    write_coco(str(tmp_path))
    with pytest.raises(
            ValueError, match=r"classes 0 and 2 are both named 'a'"):
        build(tmp_path, classes=['a', 'b', 'a', 'c'])


@pytest.mark.parametrize(
    'data, match', [
        ('{"images": "caf\xe9"}'.encode('latin-1'),
         r"is not UTF-8 text \(byte 15 is b'\\xe9'\).*Re-save it as UTF-8"),
        (json.dumps(dict(images=[])).encode('utf-16'),
         r"is not UTF-8 text \(byte 0 is b'\\xff'\)"),
        (b'', r'is empty'),
        (b'  \n', r'is empty'),
        (b'[' * 100000, 'nested too deeply'),
    ],
    ids=['latin-1', 'utf-16', 'empty', 'blank', 'nested'])
def test_unreadable_json(tmp_path, data, match):
    write_coco(str(tmp_path))
    path = osp.join(str(tmp_path), ANN)
    with open(path, 'wb') as f:
        f.write(data)
    with pytest.raises(ValueError, match=re.escape(path) + '.*' + match):
        build(tmp_path)


def test_utf8_with_byte_order_mark_is_read(tmp_path):
    expected = write_coco(str(tmp_path))
    path = osp.join(str(tmp_path), ANN)
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + data)
    np.testing.assert_array_equal(label_matrix(build(tmp_path), 4), expected)


def test_mixed_category_id_types(tmp_path):
    write_coco(str(tmp_path))

    def edit(d):
        d['categories'][1]['id'] = '2'
        d['annotations'] = [
            a for a in d['annotations'] if a['category_id'] != 2
        ]

    rewrite_json(str(tmp_path), edit)
    with pytest.raises(
            ValueError,
            match=r"mixes integer and string category ids "
            r"\(7 and '2'\).*one type"):
        build(tmp_path)


def test_string_ids_of_one_type_work(tmp_path):
    cats = [dict(c, id=f'c{c["id"]:03d}') for c in COCO_CATEGORIES]
    images = [dict(i, id=str(i['id'])) for i in COCO_IMAGES]
    anns = [
        dict(
            a,
            image_id=str(a['image_id']),
            category_id=f'c{a["category_id"]:03d}') for a in COCO_ANNOTATIONS
    ]
    expected = write_coco(str(tmp_path), images, anns, cats)
    ds = build(tmp_path)
    assert ds.CLASSES == COCO_CLASSES  # 'c002' < 'c007' < 'c013' < 'c090'
    np.testing.assert_array_equal(label_matrix(ds, 4), expected)


@pytest.mark.parametrize('bad', [True, 42.0, 1.5, None, {'id': 42}, [42]])
@pytest.mark.parametrize(
    'where', ['image', 'category', 'ann_image', 'ann_category', 'annotation'])
def test_id_types(tmp_path, where, bad):
    write_coco(str(tmp_path))

    def edit(d):
        if where == 'image':
            d['images'][0]['id'] = bad
        elif where == 'category':
            d['categories'][0]['id'] = bad
        elif where == 'annotation':
            d['annotations'][0]['id'] = bad
        else:
            d['annotations'][0][where[4:] + '_id'] = bad

    path = rewrite_json(str(tmp_path), edit)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + '.*' + re.escape(repr(bad)) +
            r' \(a .*\); ids must be integers \(or strings\)'):
        build(tmp_path)


@pytest.mark.parametrize('bad', [None, 5, '', ['a.jpg'], {'a': 1}])
def test_file_name_not_a_string(tmp_path, bad):
    write_coco(str(tmp_path))
    path = rewrite_json(
        str(tmp_path), lambda d: d['images'][1].update(file_name=bad))
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*image id 5 has file_name ' +
            re.escape(repr(bad)) + '; expected a non-empty string'):
        build(tmp_path)


@pytest.mark.parametrize('bad', [None, 3, ''])
def test_category_name_not_a_string(tmp_path, bad):
    write_coco(str(tmp_path))
    path = rewrite_json(
        str(tmp_path), lambda d: d['categories'][0].update(name=bad))
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*category id 7 has name ' +
            re.escape(repr(bad)) + '; expected a non-empty string'):
        build(tmp_path)


@pytest.mark.parametrize('edit, match', [
    (lambda d: d.update(images={}), 'has a non-list key "images"'),
    (lambda d: d.update(annotations=None), 'has a non-list key "annotations"'),
    (lambda d: d['images'].append(None),
     r'entry #4 of "images" \(None\) lacks'),
    (lambda d: d['categories'].append('dog'),
     r"entry #4 of \"categories\" \('dog'\) lacks \['id', 'name'\]"),
    (lambda d: d['annotations'].append([1, 2]),
     r'annotation #6 is \[1, 2\]; expected a JSON object'),
    (lambda d: d.update(categories=[], annotations=[]), 'lists no categories'),
])
def test_malformed_lists_and_entries(tmp_path, edit, match):
    write_coco(str(tmp_path))
    path = rewrite_json(str(tmp_path), edit)
    with pytest.raises(ValueError, match=re.escape(path) + '.*' + match):
        build(tmp_path)


def test_annotations_need_no_box(tmp_path):
    anns = [
        dict(id=a['id'], image_id=a['image_id'], category_id=a['category_id'])
        for a in COCO_ANNOTATIONS
    ]
    assert all('bbox' not in a for a in anns)
    expected = write_coco(str(tmp_path), annotations=anns)
    np.testing.assert_array_equal(label_matrix(build(tmp_path), 4), expected)


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
@pytest.mark.parametrize('make, kind',
                         [(os.mkdir, 'a directory'),
                          (getattr(os, 'mkfifo', None), 'a FIFO')])
def test_annotation_path_not_a_file(tmp_path, make, kind):
    write_coco(str(tmp_path))
    path = osp.join(str(tmp_path), ANN)
    os.remove(path)
    make(path)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + f'.* is {kind}.*not a '
            'regular file'):
        build(tmp_path)
