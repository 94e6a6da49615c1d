"""Reconstruction of the VG-200 names from Visual Genome's objects.json,
checked against counts made by hand on a small file."""
import json
import os.path as osp

import pytest

from sarb_mm.datasets.vg_names import (count_object_names, iter_json_array,
                                       match_names_to_indices, normalize_name,
                                       read_label_file, reconstruct_vg_names)
from sarb_mm.utils.errors import InvalidInputError
from tests.test_tools.tiny import run_tool


def _obj(*names):
    return {
        'object_id': 0,
        'x': 0,
        'y': 0,
        'w': 1,
        'h': 1,
        'names': list(names),
        'synsets': []
    }


# Normalised names per image (hand count below):
#   1: man, tree, street sign, window
#   2: man, tree (3 objects)
#   3: man (2 objects), street sign, car (old-style "name" key)
#   4: window (2 objects), man, shirt (one object named twice)
IMAGES = [
    {
        'image_id':
        1,
        'objects':
        [_obj('Man'),
         _obj('tree'),
         _obj('Street  Sign'),
         _obj('window')]
    },
    {
        'image_id':
        2,
        'objects':
        [_obj('man '),
         _obj('tree'),
         _obj('tree'),
         _obj('tree'),
         _obj('  ')]
    },
    {
        'image_id':
        3,
        'objects': [
            _obj('MAN'),
            _obj('man'),
            _obj('street sign'), {
                'object_id': 9,
                'name': 'car'
            }
        ]
    },
    {
        'image_id':
        4,
        'objects':
        [_obj('window'),
         _obj('window'),
         _obj('man'),
         _obj('shirt', 'Shirt')]
    },
]
# Images per name: man 4; tree, street sign, window 2 each; car, shirt 1.
IMAGE_COUNTS = {
    'man': 4,
    'tree': 2,
    'street sign': 2,
    'window': 2,
    'car': 1,
    'shirt': 1
}
# Objects per name: man 1+1+2+1, tree 1+3, window 1+2, street sign 2.
OBJECT_COUNTS = {
    'man': 5,
    'tree': 4,
    'window': 3,
    'street sign': 2,
    'car': 1,
    'shirt': 1
}
# Label file over the same images; index 0 = tree, 1 = man,
# 2 = street sign.
LABELS = {'1.jpg': [1, 0, 2], '2.jpg': [1, 0], '3.jpg': [2, 1], '4.jpg': [1]}


def _write(tmp_path, images=IMAGES, labels=LABELS):
    objects = tmp_path / 'objects.json'
    objects.write_text(json.dumps(images, indent=1))
    label_file = tmp_path / 'labels.json'
    label_file.write_text(json.dumps(labels))
    return str(objects), str(label_file)


def test_normalisation():
    assert normalize_name('  Street \t Sign ') == 'street sign'
    assert normalize_name('MAN') == 'man'
    assert normalize_name(None) == ''
    assert normalize_name('   ') == ''


def test_counts_match_the_hand_count(tmp_path):
    objects, _ = _write(tmp_path)
    counts = count_object_names(objects, keep_images={2, 4, 99})
    assert counts.num_images == 4
    assert counts.num_objects == 17
    assert dict(counts.image_counts) == IMAGE_COUNTS
    assert dict(counts.object_counts) == OBJECT_COUNTS
    # Only the images asked for keep their name sets.
    assert counts.image_names == {
        2: ('man', 'tree'),
        4: ('man', 'shirt', 'window')
    }


def test_ranking_ties_and_count_modes(tmp_path):
    objects, _ = _write(tmp_path)
    # By images: man (4), then three names with 2 images; the tie is
    # broken alphabetically, so 'window' is left out.
    by_images = reconstruct_vg_names(objects, num_classes=3)
    assert by_images.names == ['man', 'street sign', 'tree']
    assert by_images.matches is None
    # By objects: man 5, tree 4, window 3.
    by_objects = reconstruct_vg_names(objects, num_classes=3, count='objects')
    assert by_objects.names == ['man', 'tree', 'window']
    # The input order of the images does not change the result.
    shuffled, _ = _write(tmp_path, images=IMAGES[::-1])
    assert reconstruct_vg_names(shuffled, num_classes=3).names == \
        by_images.names


def test_label_file_orders_the_names(tmp_path):
    objects, labels = _write(tmp_path)
    result = reconstruct_vg_names(objects, labels, num_classes=3)
    assert result.ranked == ['man', 'street sign', 'tree']
    assert result.names == ['tree', 'man', 'street sign']
    assert [m.jaccard for m in result.matches] == [1.0, 1.0, 1.0]
    assert [(m.index_images, m.name_images, m.both)
            for m in result.matches] == [(2, 2, 2), (4, 4, 4), (2, 2, 2)]
    assert (result.label_images, result.shared_images) == (4, 4)


def test_weak_agreement_is_measured(tmp_path):
    # Index 2 is now on images 1 and 4 (where 'window' is, but 'window' is
    # not among the 3 most frequent): it gets the remaining name, 'street
    # sign' (images 1 and 3), with Jaccard |{1}| / |{1, 3, 4}| = 1/3.
    labels = {
        '1.jpg': [0, 1, 2],
        '2.jpg': [0, 1],
        '3.jpg': [1],
        '4.jpg': [1, 2]
    }
    objects, label_file = _write(tmp_path, labels=labels)
    result = reconstruct_vg_names(objects, label_file, num_classes=3)
    assert result.names == ['tree', 'man', 'street sign']
    weak = result.matches[2]
    assert (weak.index_images, weak.name_images, weak.both) == (2, 2, 1)
    assert weak.jaccard == pytest.approx(1 / 3)


def test_matching_takes_the_best_pairs_first():
    # Index 0 overlaps both names; name 'b' fits index 1 exactly, so the
    # greedy matching gives 'b' to index 1 and 'a' to index 0.
    labels = {1: [0, 1], 2: [0, 1], 3: [0]}
    image_names = {1: ('a', 'b'), 2: ('b', ), 3: ('a', )}
    matches = match_names_to_indices(['a', 'b'], labels, image_names, 2)
    assert [m.name for m in matches] == ['a', 'b']
    assert matches[1].jaccard == 1.0
    assert matches[0].jaccard == pytest.approx(2 / 3)


def test_class_count_is_checked(tmp_path):
    objects, labels = _write(tmp_path)
    with pytest.raises(
            InvalidInputError,
            match=r'indices 0\.\.2 \(3 classes\), but 200 names'):
        reconstruct_vg_names(objects, labels)
    with pytest.raises(InvalidInputError, match='only 6 distinct object'):
        reconstruct_vg_names(objects, num_classes=7)
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'1.jpg': [0, True]}))
    with pytest.raises(InvalidInputError, match="image '1.jpg' maps to"):
        read_label_file(str(bad), 1)
    unrelated = tmp_path / 'unrelated.json'
    unrelated.write_text(json.dumps({'99.jpg': [0, 1, 2]}))
    with pytest.raises(InvalidInputError, match='None of the 1 images'):
        reconstruct_vg_names(objects, str(unrelated), num_classes=3)


@pytest.mark.parametrize('chunk', [1, 3, 7, 64, 1 << 20])
def test_streaming_reader_equals_json_load(tmp_path, chunk):
    # Multi-byte characters, a byte order mark and odd spacing, read in
    # pieces that split characters and elements anywhere.
    data = [{
        'image_id': 1,
        'objects': [_obj('café'), _obj('日本')]
    }, {
        'image_id': 2,
        'objects': []
    }, [1.5, 'x'], 7, 'str', None]
    path = tmp_path / 'a.json'
    path.write_bytes(b'\xef\xbb\xbf \n[ ' +
                     json.dumps(data, ensure_ascii=False).encode()[1:-1] +
                     b' \n] \n')
    read = []
    got = list(iter_json_array(str(path), read.append, chunk_bytes=chunk))
    assert got == data
    assert sum(read) == osp.getsize(path)
    empty = tmp_path / 'empty_list.json'
    empty.write_text('[]')
    assert list(iter_json_array(str(empty))) == []


@pytest.mark.parametrize('text, problem', [
    ('{"image_id": 1}', 'does not start with'),
    ('[{"image_id": 1, "objects": []}', 'ends inside the list'),
    ('[{"image_id": 1, "objects": [}]', 'Expecting value'),
    ('[{"image_id": 1, "objects": []} {"image_id": 2}]', 'expected ","'),
    ('', 'does not start with'),
    ('[] []', 'after the closing'),
])
def test_broken_json_names_the_file(tmp_path, text, problem):
    path = tmp_path / 'objects.json'
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=problem) as err:
        list(iter_json_array(str(path), chunk_bytes=5))
    assert str(path) in str(err.value)


def test_entries_that_are_not_visual_genome(tmp_path):
    objects, _ = _write(
        tmp_path, images=[{
            'id': 3,
            'objects': [{
                'object_id': 1
            }]
        }])
    with pytest.raises(
            InvalidInputError,
            match='object #0 of image 3 .* neither a "names"'):
        count_object_names(objects)
    objects, _ = _write(tmp_path, images=[{'objects': []}])
    with pytest.raises(InvalidInputError, match='entry #0 .* integer'):
        count_object_names(objects)
    with pytest.raises(InvalidInputError, match='does not exist'):
        count_object_names(str(tmp_path / 'nothing.json'))


def test_aliases_merge_before_counting(tmp_path):
    objects, _ = _write(tmp_path)
    aliases = tmp_path / 'object_alias.txt'
    # 'window' absorbs 'shirt' (image 4, already a window image) and 'car'
    # (image 3): images {1, 4} | {4} | {3}, 3 images, ahead of 'tree' and
    # 'street sign' (2 each).
    aliases.write_text('Window,shirt,car\n')
    result = reconstruct_vg_names(
        objects, num_classes=2, alias_file=str(aliases))
    assert result.names == ['man', 'window']
    assert result.counts.image_counts['window'] == 3
    assert 'shirt' not in result.counts.image_counts


@pytest.mark.slow
def test_tool_writes_the_names_in_label_order(tmp_path):
    objects, labels = _write(tmp_path)
    out = tmp_path / 'out' / 'names.txt'
    details = tmp_path / 'names.tsv'
    proc = run_tool([
        'tools/misc/vg200_names.py', objects,
        str(out), '--label-file', labels, '--num-classes', '3', '--details',
        str(details)
    ])
    assert out.read_text().splitlines() == ['tree', 'man', 'street sign']
    rows = [line.split('\t') for line in details.read_text().splitlines()]
    assert rows[0][:3] == ['index', 'name', 'frequency']
    assert rows[2] == ['1', 'man', '4', '4', '4', '4', '1.0000']
    assert 'reconstruction' in proc.stdout
    assert '3 of 3 indices >= 0.9' in proc.stdout

    proc = run_tool([
        'tools/misc/vg200_names.py', objects,
        str(out), '--label-file', labels
    ],
                    check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert 'Pass --num-classes 3' in proc.stderr
