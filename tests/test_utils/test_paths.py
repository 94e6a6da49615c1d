"""Input and output path checks, and writes that never leave half a file."""
import errno
import os
import os.path as osp

import numpy as np
import pytest

from sarb_mm.utils.errors import InvalidInputError, MissingInputFileError
from sarb_mm.utils.paths import (atomic_open, atomic_path, check_input_file,
                                 check_output_dir, check_output_file,
                                 path_problem)


@pytest.fixture
def odd_paths(tmp_path):
    """A file, a folder, a FIFO, a broken link and a link loop."""
    (tmp_path / 'file.txt').write_text('x')
    (tmp_path / 'folder').mkdir()
    os.mkfifo(tmp_path / 'fifo')
    os.symlink(tmp_path / 'gone', tmp_path / 'broken')
    os.symlink(tmp_path / 'loop_b', tmp_path / 'loop_a')
    os.symlink(tmp_path / 'loop_a', tmp_path / 'loop_b')
    return tmp_path


def test_path_problem_tells_the_kinds_apart(odd_paths):
    assert path_problem(str(odd_paths / 'file.txt')) is None
    assert path_problem(str(odd_paths / 'nothing')) == 'does not exist'
    assert 'symbolic link loop' in path_problem(str(odd_paths / 'loop_a'))
    assert 'broken link' in path_problem(str(odd_paths / 'broken'))
    assert 'FIFO' in path_problem(str(odd_paths / 'fifo'))
    assert 'directory' in path_problem(str(odd_paths / 'folder'))
    assert 'character device' in path_problem('/dev/zero')
    assert 'a part of its path is a file' in path_problem(
        str(odd_paths / 'file.txt' / 'child'))


def test_check_input_file_messages(odd_paths):
    with pytest.raises(MissingInputFileError, match='does not exist'):
        check_input_file(str(odd_paths / 'nothing'), 'Config file')
    for name, words in (('loop_a', 'symbolic link loop'), ('fifo', 'FIFO'),
                        ('broken', 'broken link')):
        with pytest.raises(InvalidInputError) as info:
            check_input_file(str(odd_paths / name), 'Config file')
        assert not isinstance(info.value, MissingInputFileError)
        assert words in str(info.value) and name in str(info.value)
    with pytest.raises(InvalidInputError, match='/dev/zero is a character'):
        check_input_file('/dev/zero', 'Predictions file')


def test_check_output_file_refuses_before_the_work(odd_paths):
    good = str(odd_paths / 'new' / 'out.json')
    assert check_output_file(good, '--out', ('.json', )) == good
    assert osp.isdir(odd_paths / 'new')  # the folder is made up front
    refusals = {
        str(odd_paths / 'folder'): 'is a directory',
        str(odd_paths / 'fifo'): 'FIFO',
        str(odd_paths / 'loop_a'): 'symbolic link loop',
        '/dev/zero': 'character device',
        str(odd_paths / 'file.txt' / 'out.json'): 'not a folder',
    }
    for path, words in refusals.items():
        with pytest.raises(InvalidInputError) as info:
            check_output_file(path, '--out')
        assert words in str(info.value) and '--out' in str(info.value)
    with pytest.raises(InvalidInputError, match='use a file name ending'):
        check_output_file(str(odd_paths / 'out.txt'), '--out', ('.json', ))


def test_output_may_not_be_an_input(odd_paths):
    source = str(odd_paths / 'file.txt')
    os.symlink(source, odd_paths / 'alias.txt')
    for output in (source, str(odd_paths / 'alias.txt'),
                   str(odd_paths / 'folder' / '..' / 'file.txt')):
        with pytest.raises(InvalidInputError) as info:
            check_output_file(output, 'OUT', inputs=[None, source])
        assert f'OUT {output} would overwrite the input {source}' in str(
            info.value)
    assert (odd_paths / 'file.txt').read_text() == 'x'


def test_check_output_dir(odd_paths):
    made = str(odd_paths / 'a' / 'b')
    assert check_output_dir(made, '--show-dir') == made and osp.isdir(made)
    with pytest.raises(InvalidInputError, match='not a folder'):
        check_output_dir(str(odd_paths / 'file.txt'), '--show-dir')
    with pytest.raises(InvalidInputError, match='symbolic link loop'):
        check_output_dir(str(odd_paths / 'loop_a'), '--show-dir')


def _fail_midway(path, written=b'partial'):
    """Write some bytes, then fail as a full disk does."""
    with open(path, 'wb') as f:
        f.write(written)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_atomic_path_keeps_the_old_file_on_a_full_disk(tmp_path):
    target = tmp_path / 'result.npy'
    np.save(target, np.arange(3))
    with pytest.raises(InvalidInputError) as info:
        with atomic_path(str(target)) as tmp:
            assert tmp.endswith('.npy') and osp.dirname(tmp) == str(tmp_path)
            _fail_midway(tmp)
    assert 'No space left on device' in str(info.value)
    assert 'previous file is unchanged' in str(info.value)
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ['result.npy']  # no temp left

    fresh = tmp_path / 'fresh.json'
    with pytest.raises(InvalidInputError, match='no partial file is left'):
        with atomic_open(str(fresh)) as f:
            f.write('{"a": ')
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert sorted(os.listdir(tmp_path)) == ['result.npy']


def test_atomic_open_replaces_whole_files(tmp_path):
    target = tmp_path / 'out.csv'
    target.write_text('old')
    with atomic_open(str(target), 'w') as f:
        f.write('new')
        assert target.read_text() == 'old'  # readers see the old file
    assert target.read_text() == 'new'
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(KeyError):  # other errors pass through, no temp
        with atomic_open(str(target)) as f:
            f.write('half')
            raise KeyError('bug')
    assert target.read_text() == 'new' and os.listdir(tmp_path) == ['out.csv']
