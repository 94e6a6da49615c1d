"""Folders and glob patterns of inference inputs: no link is followed
into a loop, every image is listed once, a runaway walk stops."""
import glob
import os
import os.path as osp

import pytest

from sarb_mm.apis.image_paths import drawn_file_names, expand_image_path
from sarb_mm.utils.errors import InvalidInputError


def _tree(root):
    """photos/{a.jpg, b.png, notes.txt, .hidden.jpg, sub/c.jpg,
    sub/deeper/d.JPG, .cache/e.jpg}"""
    for rel in ('a.jpg', 'b.png', 'notes.txt', '.hidden.jpg', 'sub/c.jpg',
                'sub/deeper/d.JPG', '.cache/e.jpg'):
        path = root / 'photos' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'')
    return root / 'photos'


@pytest.mark.parametrize('pattern', [
    'photos/*.jpg', 'photos/**/*.jpg', 'photos/**', 'photos/*/*.jpg',
    'photos/s*/**/*.[jJ][pP][gG]', 'photos/**/deeper/*', 'photos/?.png',
    'photos/**/*'
])
def test_patterns_match_as_glob_does_without_links(tmp_path, monkeypatch,
                                                   pattern):
    """On a tree without links the result equals the standard library's
    glob (the reference), restricted to images, folders expanded."""
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    expected = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        if osp.isdir(match):
            for root, dirs, files in os.walk(match):
                dirs.sort()
                expected += [
                    osp.join(root, f) for f in sorted(files)
                    if f.lower().endswith(('.jpg', '.png'))
                ]
        elif match.lower().endswith(('.jpg', '.png')):
            expected.append(match)
    unique = list(dict.fromkeys(osp.realpath(p) for p in expected))
    assert expected, pattern
    assert [osp.realpath(p) for p in expand_image_path(pattern)] == unique


def test_link_loops_end_and_images_count_once(tmp_path, monkeypatch):
    photos = _tree(tmp_path)
    os.symlink('.', photos / 'again')  # a link to its own folder
    monkeypatch.chdir(tmp_path)
    # The standard library follows it (until the path is too long).
    assert len(glob.glob('photos/**/*.jpg', recursive=True)) > 10
    # With a second loop its walk grows exponentially: not tried here.
    os.symlink(photos, photos / 'sub' / 'up')
    for given in ('photos/**/*.jpg', 'photos', 'photos/*'):
        found = expand_image_path(given)
        real = [osp.realpath(p) for p in found]
        assert len(real) == len(set(real)), given
        assert not any('again' in p or 'up' in p for p in found), given
    assert sorted(expand_image_path('photos/**/*.jpg')) == [
        'photos/a.jpg', 'photos/sub/c.jpg'
    ]


def test_a_runaway_walk_stops_with_a_message(tmp_path):
    photos = _tree(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        expand_image_path(str(photos / '**' / '*.jpg'), max_entries=5)
    assert 'gave up after 5 directory entries' in str(info.value)
    assert str(photos) in str(info.value)
    with pytest.raises(InvalidInputError, match='gave up after 3'):
        expand_image_path(str(photos), max_entries=3)


def test_drawn_file_names_are_unique():
    assert drawn_file_names(
        ['x/a.jpg', 'y/a.png', 'a.bmp',
         None]) == ['a.png', 'a_1.png', 'a_2.png', 'array_3.png']


def test_missing_inputs_and_dangling_links_are_refused_together(tmp_path):
    from sarb_mm.apis.image_paths import expand_image_paths
    present = tmp_path / 'a.png'
    present.write_bytes(b'png')
    os.symlink(tmp_path / 'gone.png', tmp_path / 'dangling.png')
    assert expand_image_paths([present]) == [str(present)]  # a Path is fine
    with pytest.raises(ValueError) as err:
        expand_image_paths([
            str(present), tmp_path / 'dangling.png',
            str(tmp_path / 'nope.jpg')
        ])
    assert '2 input(s) do not exist' in str(err.value)
    assert 'dangling.png' in str(err.value) and 'nope.jpg' in str(err.value)
