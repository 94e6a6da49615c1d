import csv
import itertools
import os
import os.path as osp
import re

import numpy as np
import pytest

import sarb_mm  # noqa: F401
from sarb_mm.datasets import OpenImagesPartialDataset, parse_openimages_labels
from sarb_mm.datasets.partial_wrapper import full_label_matrix
from sarb_mm.utils.errors import InvalidInputError
from tests.log_capture import collect_warnings
from .fixtures import write_jpeg

# The real class-description file: LabelName,DisplayName, no header; a
# DisplayName may hold a comma (quoted) and two MIDs may share one.
DESCRIPTIONS = [
    ('/m/01yrx', 'Cat'),
    ('/m/0bt9lr', 'Dog'),
    ('/m/0k4j', 'Car'),
    ('/m/07j7r', 'Tree'),
    ('/m/0cyhj_', 'Orange, the fruit'),
    ('/m/0jc_p', 'Mouse'),
    ('/m/020lf', 'Mouse'),  # the computer mouse
]
# ImageID,Source,LabelName,Confidence as in the human-verified label file;
# the rows of one image are not contiguous, one label is given twice by two
# sources (agreeing), and image ffff has rows of no kept class in the
# subset tests.
ROWS = [
    ('000002b66c9c498e', 'verification', '/m/01yrx', '1'),
    ('000002b66c9c498e', 'verification', '/m/0k4j', '0'),
    ('00000c4ca0ccd1d3', 'crowdsource-verification', '/m/0bt9lr', '1'),
    ('000002b66c9c498e', 'crowdsource-verification', '/m/07j7r', '1'),
    ('00000c4ca0ccd1d3', 'verification', '/m/01yrx', '0'),
    ('00000c4ca0ccd1d3', 'crowdsource-verification', '/m/0bt9lr', '1'),
    ('0000ffff00000000', 'verification', '/m/0cyhj_', '1'),
    ('0000ffff00000000', 'verification', '/m/020lf', '0'),
    ('000a1249af2bc5f0', 'verification', '/m/0k4j', '1'),
    ('000a1249af2bc5f0', 'verification', '/m/0jc_p', '0'),
]
HEADER = ('ImageID', 'Source', 'LabelName', 'Confidence')

_LOGGERS = itertools.count()


def fresh_warnings():
    """Warnings of a new MMLogger: ``collect_warnings`` only sees them while
    its logger is the latest one created, so each use gets a new name."""
    return collect_warnings(f'test-openimages-{next(_LOGGERS)}')


def write_openimages(root,
                     rows=ROWS,
                     descriptions=DESCRIPTIONS,
                     header=HEADER,
                     class_header=False,
                     images=True):
    """Write the label CSV, the class descriptions and the images."""
    ann = osp.join(root, 'annotations')
    os.makedirs(ann, exist_ok=True)
    with open(osp.join(ann, 'labels.csv'), 'w', newline='') as f:
        writer = csv.writer(f, lineterminator='\n')
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    with open(osp.join(ann, 'classes.csv'), 'w', newline='') as f:
        writer = csv.writer(f, lineterminator='\n')
        if class_header:
            writer.writerow(('LabelName', 'DisplayName'))
        writer.writerows(descriptions)
    if images:
        for image_id in {row[0] for row in rows}:
            write_jpeg(osp.join(root, 'train', f'{image_id}.jpg'))
    return osp.join(ann, 'labels.csv')


def expected_labels(rows, mids):
    """Image order and -1/0/1 matrix of ``rows`` for the classes ``mids``,
    by a plain loop."""
    order, labels = [], {}
    for image_id, _, mid, confidence in rows:
        if mid not in mids:
            continue
        if image_id not in labels:
            order.append(image_id)
            labels[image_id] = np.zeros(len(mids), dtype=np.int8)
        labels[image_id][mids.index(mid)] = 1 if confidence == '1' else -1
    return order, np.array([labels[i] for i in order], dtype=np.int8)


def build(root, **kwargs):
    return OpenImagesPartialDataset(
        data_root=str(root),
        ann_file='annotations/labels.csv',
        class_file='annotations/classes.csv',
        **kwargs)


@pytest.mark.parametrize('class_header', [False, True])
def test_all_classes_of_the_description_file(tmp_path, class_header):
    write_openimages(str(tmp_path), class_header=class_header)
    dataset = build(tmp_path)
    mids = [mid for mid, _ in DESCRIPTIONS]
    order, expected = expected_labels(ROWS, mids)
    assert dataset.metainfo['classes'] == ('Cat', 'Dog', 'Car', 'Tree',
                                           'Orange, the fruit',
                                           'Mouse (/m/0jc_p)',
                                           'Mouse (/m/020lf)')
    assert dataset.label_names == mids
    assert [
        osp.basename(dataset.get_data_info(i)['img_path'])
        for i in range(len(dataset))
    ] == [f'{i}.jpg' for i in order]
    np.testing.assert_array_equal(full_label_matrix(dataset), expected)
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        np.testing.assert_array_equal(info['gt_score'], expected[idx])
        assert info['gt_label'] == np.flatnonzero(expected[idx] > 0).tolist()


@pytest.mark.parametrize('subset', [
    ['Tree', 'Cat', '/m/0k4j'],
    'subset.txt',
])
def test_class_subset(tmp_path, subset):
    write_openimages(str(tmp_path))
    (tmp_path / 'subset.txt').write_text('Tree\n\n/m/01yrx\nCar\n')
    dataset = build(tmp_path, class_subset=subset)
    mids = ['/m/07j7r', '/m/01yrx', '/m/0k4j']
    order, expected = expected_labels(ROWS, mids)
    assert dataset.metainfo['classes'] == ('Tree', 'Cat', 'Car')
    # Image ffff has rows of other classes only: it is not listed.
    assert len(dataset) == 3 and '0000ffff00000000' not in order
    np.testing.assert_array_equal(dataset.known_label_matrix(), expected)


@pytest.mark.parametrize('subset, match', [
    (['Cat', 'Mouse'], r"entry 'Mouse' is the DisplayName of several "
     r"classes \(\['/m/0jc_p', '/m/020lf'\]\).*give the LabelName"),
    (['Cat', 'Horse'], r"entry 'Horse' is neither a LabelName nor a "
     r'DisplayName'),
    (['Cat', '/m/01yrx'], r"entries 'Cat' and '/m/01yrx' both name the "
     r'class /m/01yrx'),
    ([], r'class_subset must be a non-empty list'),
])
def test_bad_class_subset(tmp_path, subset, match):
    write_openimages(str(tmp_path))
    with pytest.raises(InvalidInputError, match=match):
        build(tmp_path, class_subset=subset)


def _row_error(tmp_path, rows, **kwargs):
    label_file = write_openimages(str(tmp_path), rows=rows, **kwargs)
    with pytest.raises(InvalidInputError) as err:
        build(tmp_path)
    message = str(err.value)
    assert message.startswith(f'OpenImages label file {label_file!r}')
    return message


def test_unknown_class_names_line_and_field(tmp_path):
    rows = ROWS[:3] + [('000002b66c9c498e', 'verification', '/m/0horse', '1')]
    message = _row_error(tmp_path, rows)
    assert re.search(
        r"line 5, field LabelName: the class '/m/0horse' is not in the "
        r'class-description file .*classes.csv', message), message


def test_contradictory_rows_name_both_lines(tmp_path):
    # Image 00000c4c: dog is 1 on lines 4 and 7 and 0 on line 12.
    rows = ROWS + [('00000c4ca0ccd1d3', 'verification', '/m/0bt9lr', '0')]
    message = _row_error(tmp_path, rows)
    assert re.search(
        r"image '00000c4ca0ccd1d3' has contradictory labels for the class "
        r"/m/0bt9lr \('Dog'\), Confidence 1 on line 4 and 0 on line 12 "
        r'\(field Confidence; 3 rows of this label in all\)', message), message


@pytest.mark.parametrize('confidence', ['0.7', 'yes', ''])
def test_confidence_must_be_0_or_1(tmp_path, confidence):
    rows = ROWS[:2] + [
        ('000002b66c9c498e', 'verification', '/m/0bt9lr', confidence)
    ]
    message = _row_error(tmp_path, rows)
    assert f'line 4, field Confidence: {confidence!r} is not 0 or 1' in \
        message


def test_confidence_as_float_is_accepted(tmp_path):
    rows = [(i, s, m, c + '.0') for i, s, m, c in ROWS]
    write_openimages(str(tmp_path), rows=rows)
    _, expected = expected_labels(ROWS, [m for m, _ in DESCRIPTIONS])
    np.testing.assert_array_equal(
        build(tmp_path).known_label_matrix(), expected)


def test_bad_header_rows_and_ids(tmp_path):
    message = _row_error(tmp_path, ROWS, header=None)
    assert 'has no header with the columns ImageID, LabelName and ' \
        'Confidence' in message
    assert "'ImageID,Source,LabelName,Confidence'" in message
    message = _row_error(tmp_path, ROWS[:2] + [('abc', 'verification')])
    assert 'line 4 has 2 fields, but the header has 4' in message
    message = _row_error(tmp_path,
                         ROWS[:2] + [('a/b', 'verification', '/m/0k4j', '1')])
    assert "line 4, field ImageID: 'a/b' is not an image id" in message
    message = _row_error(tmp_path, [])  # the header only
    assert 'has no row of the classes' in message


def test_description_file_errors(tmp_path):
    write_openimages(
        str(tmp_path), descriptions=DESCRIPTIONS + [('/m/01yrx', 'Kitten')])
    with pytest.raises(
            InvalidInputError,
            match=r"classes.csv', line 8 lists the LabelName "
            r"'/m/01yrx' again \(first on line 1\)"):
        build(tmp_path)


def test_missing_images(tmp_path):
    write_openimages(str(tmp_path))
    os.remove(osp.join(str(tmp_path), 'train', '000a1249af2bc5f0.jpg'))
    with pytest.raises(
            InvalidInputError,
            match=r"ImageID '000a1249af2bc5f0': the image "
            r"'000a1249af2bc5f0.jpg' is not found"):
        build(tmp_path)
    with fresh_warnings() as seen:
        dataset = build(tmp_path, missing_images='skip')
    assert len(dataset) == 3
    assert any('1 listed image(s) are not in the image directory' in m
               for m in seen)


def test_streaming_parse_matches_a_plain_loop(tmp_path):
    """Shuffled rows with repeats, against a dictionary-based reference."""
    rng = np.random.default_rng(0)
    mids = [f'/m/{i:03d}' for i in range(30)]
    descriptions = [(m, f'class {i}') for i, m in enumerate(mids)]
    truth = rng.integers(0, 2, size=(200, 30))
    rows = []
    for img in range(200):
        for cls in rng.choice(30, size=rng.integers(1, 8), replace=False):
            row = (f'{img:016x}', 'verification', mids[cls],
                   str(truth[img, cls]))
            rows += [row] * int(rng.integers(1, 3))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    write_openimages(
        str(tmp_path), rows=rows, descriptions=descriptions, images=False)
    subset = [mids[i] for i in (7, 3, 21, 0, 29)]
    labels = parse_openimages_labels(
        osp.join(str(tmp_path), 'annotations', 'labels.csv'),
        osp.join(str(tmp_path), 'annotations', 'classes.csv'), subset)
    order, expected = expected_labels(rows, subset)
    assert labels.image_ids == order
    assert labels.label_names == subset
    np.testing.assert_array_equal(labels.to_matrix(), expected)


def test_non_utf8_label_file(tmp_path):
    label_file = write_openimages(str(tmp_path))
    size = osp.getsize(label_file)
    with open(label_file, 'rb') as f:
        num_lines = f.read().count(b'\n')
    with open(label_file, 'ab') as f:
        f.write(b'000002b66c9c498e,verification,/m/01yrx\xff,1\n')
    # The byte offset in the file and the line of the bad byte.
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f"labels.csv' is not UTF-8 text (byte {size + 38} "
                            f"is b'\\xff'), on line {num_lines + 1}; re-save "
                            'it as UTF-8')):
        build(tmp_path)


def test_only_human_verified_sources_count(tmp_path):
    """A machine prediction (even with Confidence 0/1) is not a verified
    label: skipped by default, counted with sources=None."""
    machine = [('000002b66c9c498e', 'machine', '/m/0bt9lr', '1'),
               ('000002b66c9c498e', 'machine', '/m/0cyhj_', '0.7'),
               ('0000aaaa00000000', 'machine', '/m/01yrx', '0')]
    write_openimages(str(tmp_path), rows=ROWS + machine)
    mids = [m for m, _ in DESCRIPTIONS]
    _, expected = expected_labels(ROWS, mids)
    np.testing.assert_array_equal(
        build(tmp_path).known_label_matrix(), expected)
    # Every source: the machine rows become labels (0.7 is refused).
    write_openimages(str(tmp_path), rows=ROWS + machine[::2])
    _, with_machine = expected_labels(ROWS + machine[::2], mids)
    np.testing.assert_array_equal(
        build(tmp_path, sources=None).known_label_matrix(), with_machine)
    assert with_machine.shape[0] == expected.shape[0] + 1
    with pytest.raises(InvalidInputError, match='sources must be a list'):
        build(tmp_path, sources='verification')
    # A file without the Source column needs sources=None.
    three = [(i, m, c) for i, _, m, c in ROWS]
    write_openimages(
        str(tmp_path),
        rows=three,
        header=('ImageID', 'LabelName', 'Confidence'))
    with pytest.raises(
            InvalidInputError, match='no Source column.*'
            'sources=None'):
        build(tmp_path)
    _, expected = expected_labels(ROWS, mids)
    np.testing.assert_array_equal(
        build(tmp_path, sources=None).known_label_matrix(), expected)
