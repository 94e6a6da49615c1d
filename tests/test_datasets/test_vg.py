import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import sarb_mm  # noqa: F401  (registers the datasets)
from sarb_mm.datasets import VG200MultiLabelDataset
from .fixtures import VG_LABELS, VG_TEST, VG_TRAIN, label_matrix, write_vg

LABELS = 'vg_category_200_labels_index.json'


def build(root, **kwargs):
    return DATASETS.build(
        dict(type='VG200MultiLabelDataset', data_root=str(root), **kwargs))


def test_train_split(tmp_path):
    expected = write_vg(str(tmp_path))
    ds = build(tmp_path)

    assert isinstance(ds, VG200MultiLabelDataset)
    assert len(ds.CLASSES) == 200
    assert ds.CLASSES[0] == 'vg_class_000'
    assert ds.CLASSES[199] == 'vg_class_199'
    assert len(ds) == len(VG_TRAIN)
    # List order (2, 1, 10), indices sorted and deduplicated.
    assert [ds.get_data_info(i)['gt_label']
            for i in range(len(ds))] == [[17, 199], [0, 5], []]
    np.testing.assert_array_equal(label_matrix(ds, 200), expected)
    assert ds.get_data_info(0)['img_path'] == osp.join(
        str(tmp_path), 'VG_100K', '2.jpg')


def test_test_split_list_override_and_pipeline(tmp_path):
    expected = write_vg(str(tmp_path), split='test')
    ds = build(
        tmp_path,
        split='test',
        test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])
    np.testing.assert_array_equal(label_matrix(ds, 200), expected)
    assert ds[1]['data_samples'].gt_label.tolist() == [4, 150]

    with open(tmp_path / 'mini.txt', 'w') as f:
        f.write('4.jpg\n\n1.jpg\n')
    ds = build(tmp_path, list_file='mini.txt')
    labels = [ds.get_data_info(i)['gt_label'] for i in range(2)]
    assert labels == [[4, 150], [0, 5]]

    with pytest.raises(ValueError, match=r"'train', 'test'.*'val'"):
        build(tmp_path, split='val')


def test_class_names(tmp_path):
    labels = {'a.jpg': [0, 2], 'b.jpg': [1]}
    write_vg(str(tmp_path), ['a.jpg', 'b.jpg'], [], labels)
    names = ['man', 'dog', 'tree']
    # mmengine keeps a metainfo list as given.
    assert list(build(tmp_path, metainfo=dict(classes=names)).CLASSES) == names

    name_file = tmp_path / 'names.txt'
    name_file.write_text('\n'.join(names) + '\n')
    assert build(tmp_path, classes=str(name_file)).CLASSES == tuple(names)
    assert list(
        build(tmp_path,
              metainfo=dict(classes=str(name_file))).CLASSES) == names

    # Fewer names than the label file uses: index 2 is out of range.
    with pytest.raises(ValueError, match=r"'a\.jpg' has label 2.*0\.\.1"):
        build(tmp_path, metainfo=dict(classes=['man', 'dog']))

    missing = str(tmp_path / 'no_names.txt')
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        build(tmp_path, metainfo=dict(classes=missing))


LAYOUT = r'(.|\n)*Expected dataset layout(.|\n)*train_list_500\.txt'


def test_missing_paths(tmp_path):
    missing = tmp_path / 'none'
    with pytest.raises(
            FileNotFoundError,
            match='data_root.*' + re.escape(str(missing)) + LAYOUT):
        build(missing)

    write_vg(str(tmp_path))
    for rel, what in [('test_list_500.txt', 'image list file'),
                      (LABELS, 'label file')]:
        os.remove(tmp_path / rel)
        with pytest.raises(
                FileNotFoundError,
                match=what + '.*' + re.escape(osp.join(str(tmp_path), rel)) +
                LAYOUT):
            build(tmp_path, split='test')
        write_vg(str(tmp_path))

    shutil.rmtree(tmp_path / 'VG_100K')
    with pytest.raises(
            FileNotFoundError,
            match='image directory.*' +
            re.escape(osp.join(str(tmp_path), 'VG_100K'))):
        build(tmp_path)


@pytest.mark.parametrize('bad', [200, -1, 3.0, '7'])
def test_label_out_of_range(tmp_path, bad):
    labels = dict(VG_LABELS, **{'1.jpg': [4, bad]})
    # split='test' only so that the fixture's expected matrix stays valid.
    write_vg(str(tmp_path), labels=labels, split='test')
    path = re.escape(osp.join(str(tmp_path), LABELS))
    with pytest.raises(
            ValueError,
            match=path + r".*image '1\.jpg' has label " +
            re.escape(repr(bad)) + r'.*0\.\.199'):
        build(tmp_path)


def test_image_missing_from_labels(tmp_path):
    write_vg(
        str(tmp_path),
        train=['1.jpg', 'ghost.jpg'],
        labels=VG_LABELS,
        split='test')
    with pytest.raises(
            ValueError,
            match=re.escape(osp.join(str(tmp_path), LABELS)) +
            r".*no entry for image 'ghost\.jpg'"):
        build(tmp_path)


def test_bad_label_file(tmp_path):
    write_vg(str(tmp_path))
    path = osp.join(str(tmp_path), LABELS)
    with open(path, 'w') as f:
        f.write('{"1.jpg": [1,')
    with pytest.raises(ValueError, match=re.escape(path) + '.*not valid JSON'):
        build(tmp_path)
    with open(path, 'w') as f:
        json.dump([[1, 2]], f)
    with pytest.raises(ValueError, match=re.escape(path) + '.*JSON object'):
        build(tmp_path)


def test_empty_split(tmp_path):
    write_vg(str(tmp_path), test=VG_TEST, train=[])
    path = osp.join(str(tmp_path), 'train_list_500.txt')
    with pytest.raises(ValueError, match=re.escape(path) + '.*no images'):
        build(tmp_path)


@pytest.mark.parametrize('name, why', [('../1.jpg', "'..' component"),
                                       ('/etc/passwd', 'absolute path'),
                                       ('http://x/1.jpg', 'URL')])
def test_file_name_leaving_the_data_root(tmp_path, name, why):
    labels = dict(VG_LABELS, **{name: [1]})
    write_vg(str(tmp_path), labels=labels, split='test')
    with open(tmp_path / 'train_list_500.txt', 'w') as f:
        f.write(f'1.jpg\n{name}\n')
    path = osp.join(str(tmp_path), 'train_list_500.txt')
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*lists ' + re.escape(repr(name)) +
            r', which leaves the data '
            r'root \(.*' + re.escape(why) + r'.*allow_outside_data_root=True'):
        build(tmp_path)


def test_file_name_outside_allowed_explicitly(tmp_path):
    root = tmp_path / 'vg'
    labels = dict(VG_LABELS, **{'../extra/9.jpg': [7]})
    write_vg(str(root), labels=labels, split='test')
    with open(root / 'train_list_500.txt', 'w') as f:
        f.write('1.jpg\n../extra/9.jpg\n')
    ds = build(root, allow_outside_data_root=True)
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [[0, 5], [7]]
    assert ds.get_data_info(1)['img_path'] == osp.join(
        str(root), 'VG_100K', '../extra/9.jpg')


@pytest.mark.parametrize('second', ['1.jpg', './1.jpg'])
def test_image_listed_twice(tmp_path, second):
    write_vg(
        str(tmp_path),
        train=['1.jpg', '2.jpg', second],
        labels=VG_LABELS,
        split='test')
    path = osp.join(str(tmp_path), 'train_list_500.txt')
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r".*lists '1\.jpg'.*\(one "
            r'image\) twice, on lines 1 and 3'):
        build(tmp_path)


def test_files_not_utf8(tmp_path):
    write_vg(str(tmp_path))
    path = osp.join(str(tmp_path), 'train_list_500.txt')
    with open(path, 'wb') as f:
        f.write(b'1.jpg\n\xff.jpg\n')
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r"' is not UTF-8 text \(byte 6"):
        build(tmp_path)

    write_vg(str(tmp_path))
    path = osp.join(str(tmp_path), LABELS)
    with open(path, 'wb') as f:
        f.write('{"1.jpg": [1], "\u00e9.jpg": [2]}'.encode('latin-1'))
    with pytest.raises(
            ValueError, match=re.escape(path) + r"' is not UTF-8 text"):
        build(tmp_path)


def test_repeated_class_names(tmp_path):
    write_vg(str(tmp_path), ['a.jpg'], [], {'a.jpg': [0]})
    with pytest.raises(
            ValueError, match=r"classes 0 and 2 are both named 'man'"):
        build(tmp_path, classes=['man', 'dog', 'man'])


def test_label_file_with_a_repeated_key(tmp_path):
    write_vg(str(tmp_path))
    path = osp.join(str(tmp_path), LABELS)
    with open(path, 'w') as f:  # json.dump cannot write this
        f.write('{"1.jpg": [1], "2.jpg": [2], "10.jpg": [], "1.jpg": [3]}')
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r"' has the key '1\.jpg' "
            'twice in one object'):
        build(tmp_path)
