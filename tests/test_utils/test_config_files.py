"""Config files: YAML is data only, dumped configs are read without running
them, odd paths are named for what they are."""
import os
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from sarb_mm.utils.config_files import load_config_file, load_dumped_config
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import load_config


def _args(path):
    return SimpleNamespace(
        config=str(path), work_dir=None, launcher='none', local_rank=0)


def test_yaml_code_tags_are_refused_before_mmengine_runs_them(tmp_path):
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.yaml'
    evil.write_text('model:\n  type: ImageClassifier\n'
                    f'  x: !!python/object/apply:os.system ["touch {marker}"]'
                    '\n')
    with pytest.raises(InvalidInputError) as info:
        load_config(_args(evil))
    assert not marker.exists()
    assert f'Config {evil}, line 3' in str(info.value)
    assert '!!python/object' in str(info.value)

    # Through a YAML base as well.
    leaf = tmp_path / 'leaf.yml'
    leaf.write_text('_base_: [evil.yaml]\nb: 2\n')
    with pytest.raises(InvalidInputError, match='evil.yaml, line 3'):
        load_config_file(str(leaf))
    assert not marker.exists()

    plain = tmp_path / 'plain.yaml'
    plain.write_text('a: 1\nb: [1, 2]\n')
    cfg = load_config(_args(plain))
    assert (cfg.a, cfg.b) == (1, [1, 2])


def test_placeholders_cannot_write_a_code_tag(tmp_path, monkeypatch):
    """mmengine substitutes {{$VAR:default}} with a pattern from the file,
    which can turn a comment into a !!python tag that the text check
    never saw; mmengine's YAML loader is the safe one once sarb_mm is
    imported."""
    monkeypatch.chdir(tmp_path)  # the command's path becomes a regex
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.yaml'
    evil.write_text(
        '# {{$NOPE_SARB_X:x\\na:\\t!!python/object/apply:os.system\\t'
        '["touch\\040ran"]\\t#|zz}}\nb: 1\n')
    with pytest.raises(InvalidInputError, match='not plain YAML data'):
        load_config(_args(evil))
    assert not marker.exists()
    py_base = tmp_path / 'leaf.yaml'
    (tmp_path / 'base.py').write_text('a = 1\n')
    py_base.write_text('_base_: [base.py]\nb: 2\n')
    with pytest.raises(InvalidInputError, match='_base_ base.py is a Python'):
        load_config(_args(py_base))


def test_config_paths_that_are_not_files(tmp_path):
    os.mkfifo(tmp_path / 'fifo.py')
    os.symlink(tmp_path / 'b.py', tmp_path / 'a.py')
    os.symlink(tmp_path / 'a.py', tmp_path / 'b.py')
    for path, words in ((tmp_path / 'fifo.py', 'is a FIFO'),
                        (tmp_path / 'a.py', 'is a symbolic link loop')):
        with pytest.raises(InvalidInputError) as info:
            load_config(_args(path))
        assert f'Config file {path} {words}' in str(info.value)


def test_dumped_configs_read_as_data_equal_mmengine(tmp_path):
    cfg = Config.fromfile('configs/sarb_r18_demo_p10.py')
    dumped = str(tmp_path / 'dumped.py')
    cfg.dump(dumped)
    assert load_dumped_config(dumped).to_dict() == Config.fromfile(
        dumped).to_dict()


@pytest.mark.parametrize('line', [
    "import os\nos.system('touch {marker}')",
    "a = __import__('os').system('touch {marker}')",
    "a = dict(b=open('{marker}', 'w'))",
    "a = [x for x in ().__class__.__base__.__subclasses__()]",
    "exec('open(\"{marker}\", \"w\")')",
])
def test_code_in_a_dumped_config_is_not_run(tmp_path, line):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.py'
    path.write_text('model = dict(type="X")\n' + line.format(marker=marker))
    with pytest.raises(InvalidInputError, match='is not plain data'):
        load_dumped_config(str(path))
    assert not marker.exists()
