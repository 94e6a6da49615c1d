import os
import os.path as osp
import re

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import sarb_mm  # noqa: F401  (registers the datasets)
from sarb_mm.datasets import VOC2007MultiLabelDataset
from .fixtures import VOC_SPLIT, label_matrix, voc_xml, write_voc

# The published order (docs/protocol.md), written out independently.
PUBLISHED_VOC_CLASSES = (
    'aeroplane bicycle bird boat bottle bus car cat chair cow diningtable '
    'dog horse motorbike person pottedplant sheep sofa train tvmonitor'
).split()


def build(root, **kwargs):
    return DATASETS.build(
        dict(type='VOC2007MultiLabelDataset', data_root=str(root), **kwargs))


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / 'VOCdevkit' / 'VOC2007'
    labels, difficult = write_voc(str(root), return_difficult=True)
    return root, labels, difficult


def test_negative_mode_default(voc_root):
    root, labels, _ = voc_root
    ds = build(root)

    assert isinstance(ds, VOC2007MultiLabelDataset)
    assert list(ds.CLASSES) == PUBLISHED_VOC_CLASSES
    assert len(ds) == len(VOC_SPLIT)  # blank lines skipped
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    # chair(8) also appears as difficult; dog(11) and car(6) only difficult
    # -> negative; horse(12) has no <difficult> tag -> a normal object.
    assert [info['gt_label'] for info in infos] == [[8, 14], [18], [12, 14],
                                                    []]
    assert all(info['gt_label_difficult'] == [] for info in infos)
    np.testing.assert_array_equal(label_matrix(ds, 20), labels)
    assert infos[1]['img_path'] == osp.join(
        str(root), 'JPEGImages', '000002.jpg')


def test_ignore_mode(voc_root):
    root, labels, difficult = voc_root
    ds = build(root, difficult='ignore')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [info['gt_label'] for info in infos] == [[8, 14], [18], [12, 14],
                                                    []]
    # Only classes present *only* as difficult: not chair, not person.
    assert [info['gt_label_difficult'] for info in infos] == [[], [11], [],
                                                              [6]]
    np.testing.assert_array_equal(
        label_matrix(ds, 20, 'gt_label_difficult'), difficult)


def test_bad_difficult_value(voc_root):
    with pytest.raises(ValueError, match=r"'negative', 'ignore'.*'skip'"):
        build(voc_root[0], difficult='skip')


def test_test_split_and_pipeline(tmp_path):
    root = tmp_path / 'VOC2007'
    objects = {'000001': [('dog', 0)], '000003': [('sofa', 0), ('cat', 0)]}
    expected = write_voc(str(root), objects, ['000003', '000001'], 'test')
    ds = build(
        root,
        split='test',
        test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])
    np.testing.assert_array_equal(label_matrix(ds, 20), expected)
    assert ds[0]['data_samples'].gt_label.tolist() == [7, 17]


LAYOUT = r'(.|\n)*Expected dataset layout(.|\n)*ImageSets/Main'


def test_missing_paths(tmp_path, voc_root):
    missing = tmp_path / 'none'
    with pytest.raises(
            FileNotFoundError,
            match='data_root.*' + re.escape(str(missing)) + LAYOUT):
        build(missing)

    root = voc_root[0]
    with pytest.raises(
            FileNotFoundError,
            match=re.escape(str(root.parent / 'VOC2007')) + '.*as data_root'):
        build(root.parent)  # VOCdevkit instead of VOC2007

    split = osp.join(str(root), 'ImageSets', 'Main', 'val.txt')
    with pytest.raises(
            FileNotFoundError,
            match='split file.*' + re.escape(split) + LAYOUT):
        build(root, split='val')

    os.remove(root / 'Annotations' / '000009.xml')
    xml = osp.join(str(root), 'Annotations', '000009.xml')
    with pytest.raises(FileNotFoundError, match=re.escape(xml) + LAYOUT):
        build(root)

    os.rename(root / 'JPEGImages', root / 'images')
    with pytest.raises(
            FileNotFoundError,
            match='image directory.*' +
            re.escape(osp.join(str(root), 'JPEGImages'))):
        build(root)

    os.rename(root / 'Annotations', root / 'xml')
    with pytest.raises(
            FileNotFoundError,
            match='annotation directory.*' +
            re.escape(osp.join(str(root), 'Annotations'))):
        build(root)


def write_one(root, text):
    write_voc(str(root), {'000001': [('dog', 0)]})
    path = osp.join(str(root), 'Annotations', '000001.xml')
    with open(path, 'w') as f:
        f.write(text)
    return re.escape(path)


def test_unknown_class(tmp_path):
    path = write_one(tmp_path, voc_xml([('dog', 0), ('unicorn', 0)]))
    with pytest.raises(
            ValueError,
            match=path + r".*unknown class name 'unicorn'.*"
            r"allowed names are \['aeroplane', 'bicycle'"):
        build(tmp_path)


def test_missing_name(tmp_path):
    text = voc_xml([('dog', 0), ('cat', 0)]).replace('<name>cat</name>', '')
    path = write_one(tmp_path, text)
    with pytest.raises(ValueError, match=path + '.*object #1 has no <name>'):
        build(tmp_path)


def test_unparsable_xml(tmp_path):
    path = write_one(tmp_path, '<annotation><object><name>dog</name>')
    with pytest.raises(ValueError, match=path + '.*not valid XML'):
        build(tmp_path)


def test_padded_xml_is_refused_before_parsing(tmp_path, monkeypatch):
    import sarb_mm.datasets.voc as voc
    monkeypatch.setattr(voc, 'MAX_XML_BYTES', 64 * 1024)
    text = voc_xml([
        ('dog', 0)
    ]).replace('<name>dog</name>',
               '<name>dog</name><pad>' + 'x' * 100_000 + '</pad>')
    write_one(tmp_path, text)
    with pytest.raises(
            ValueError,
            match=r"000001.xml' is 100\d+ bytes, more than the "
            '65536'):
        build(tmp_path)


def test_empty_split(tmp_path):
    write_voc(str(tmp_path), {})
    split = osp.join(str(tmp_path), 'ImageSets', 'Main', 'trainval.txt')
    with pytest.raises(ValueError, match=re.escape(split) + '.*no images'):
        build(tmp_path)


def _write_split(root, text):
    path = osp.join(str(root), 'ImageSets', 'Main', 'trainval.txt')
    with open(path, 'wb') as f:
        f.write(text)
    return path


@pytest.mark.parametrize('img_id, why', [('../000005', "'..' component"),
                                         ('/tmp/000005', 'absolute path'),
                                         ('s3://bucket/000005', 'URL')])
def test_image_id_leaving_the_data_root(voc_root, img_id, why):
    root = voc_root[0]
    split = _write_split(root, f'000005\n{img_id}\n'.encode())
    with pytest.raises(
            ValueError,
            match=re.escape(split) + r'.*lists image id ' +
            re.escape(repr(img_id)) + r', which leaves the data '
            r'root \(.*' + re.escape(why) + r'.*allow_outside_data_root=True'):
        build(root)


def test_image_id_outside_allowed_explicitly(tmp_path):
    root = tmp_path / 'VOC2007'
    objects = {'000001': [('dog', 0)], '000003': [('sofa', 0), ('cat', 0)]}
    write_voc(str(root), objects)
    # 000003's XML and image moved to a directory beside the usual ones.
    os.makedirs(root / 'extra')
    for sub, ext in (('Annotations', 'xml'), ('JPEGImages', 'jpg')):
        os.rename(root / sub / f'000003.{ext}',
                  root / 'extra' / f'000003.{ext}')
    _write_split(root, b'000001\n../extra/000003\n')
    ds = build(
        root,
        allow_outside_data_root=True,
        pipeline=[
            dict(type='CheckedLoadImageFromFile'),
            dict(type='PackInputs')
        ])
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [[11],
                                                                   [7, 17]]
    assert osp.realpath(ds.get_data_info(1)['img_path']) == str(
        root / 'extra' / '000003.jpg')
    assert tuple(ds[1]['inputs'].shape) == (3, 8, 8)
    with pytest.raises(TypeError, match='allow_outside_data_root'):
        build(root, allow_outside_data_root=1)


@pytest.mark.parametrize(
    'lines', [b'000005\n000002\n000005\n', b'000005\n000002\n./000005\n'])
def test_image_listed_twice(voc_root, lines):
    root = voc_root[0]
    split = _write_split(root, lines)
    with pytest.raises(
            ValueError,
            match=re.escape(split) + r".*lists '000005'.* \(one "
            r'image\) twice, on lines 1 and 3.*count twice'):
        build(root)


def test_split_file_not_utf8(voc_root):
    root = voc_root[0]
    split = _write_split(root, b'000005\n00000\xe9\n')
    with pytest.raises(
            ValueError,
            match=re.escape(split) + r"' is not UTF-8 text \(byte "
            r"12 is b'\\xe9'\).*Re-save it as UTF-8"):
        build(root)


def test_repeated_class_names(voc_root):
    names = list(PUBLISHED_VOC_CLASSES)
    names[19] = 'dog'
    with pytest.raises(
            ValueError, match=r"classes 11 and 19 are both named 'dog'"):
        build(voc_root[0], metainfo=dict(classes=names))
