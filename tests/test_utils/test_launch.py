"""Start-up of the tools: bad arguments and configs end with one message."""
import argparse
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import (add_common_args, load_config,
                                  merge_cfg_options, prepare_distributed,
                                  run_tool)


def _parser():
    parser = argparse.ArgumentParser(prog='train.py')
    parser.add_argument('config')
    add_common_args(parser)
    return parser


@pytest.mark.parametrize('item, match', [
    ('train_cfg.max_epochs', 'expected KEY=VALUE'),
    ('=3', 'expected KEY=VALUE'),
    ('a=[1,2', 'cannot parse'),
    ('a=x[1,2]', 'cannot parse'),
])
def test_malformed_cfg_options_are_usage_errors(item, match, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(['c.py', '--cfg-options', item])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def _args(path):
    return SimpleNamespace(
        config=str(path), local_rank=0, launcher='none', work_dir=None)


def test_config_problems_are_named(tmp_path):
    text = tmp_path / 'cfg.txt'
    text.write_text('a = 1\n')
    with pytest.raises(InvalidInputError, match='configs are .py'):
        load_config(_args(text))
    base = tmp_path / 'base.py'
    base.write_text('a = dict(\n    b=1,\n    c=)\n')
    leaf = tmp_path / 'leaf.py'
    leaf.write_text("_base_ = './base.py'\nd = 2\n")
    with pytest.raises(
            InvalidInputError, match=f'Syntax error in config {base}, line 3'):
        load_config(_args(leaf))
    base.write_text('a = dict(b=1)\n')
    leaf.write_text("_base_ = './base.py'\nd = {{_base_.nope}}\n")
    with pytest.raises(InvalidInputError, match='nope'):
        load_config(_args(leaf))
    leaf.write_text("_base_ = './missing.py'\n")
    with pytest.raises(InvalidInputError, match='missing.py'):
        load_config(_args(leaf))


def test_cfg_option_through_a_scalar_names_the_key():
    cfg = Config(dict(model=dict(head=3)))
    with pytest.raises(
            InvalidInputError,
            match=r'--cfg-options model.head.num_classes=5'):
        merge_cfg_options(cfg, {'model.head.num_classes': 5})
    merge_cfg_options(cfg, {'model.neck': 1})
    assert cfg.model.neck == 1


def test_pytorch_launcher_needs_torchrun(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidInputError, match='dist_train.sh or torchrun'):
        prepare_distributed(Config(dict(launcher='pytorch')))


def test_run_tool_prints_bad_input_without_traceback(capsys):

    def bad_input():
        raise InvalidInputError('Config key x is wrong.')

    def bad_argument():  # a config entry the class does not take
        from mmpretrain.registry import MODELS
        MODELS.build(dict(type='PartialBCELoss', loss_weigth=1.0))

    def bug():
        raise TypeError('unsupported operand type(s)')

    def bug_with_keyword():  # inside code, not at a config call site

        def inner(a):
            return a

        inner(b=1)

    for main, match in ((bad_input, 'Config key x is wrong.'),
                        (bad_argument,
                         "unexpected keyword argument 'loss_weigth'")):
        with pytest.raises(SystemExit) as exit_info:
            run_tool(main)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert match in err and 'Traceback' not in err
    # bugs keep their traceback
    with pytest.raises(TypeError, match='unsupported operand'):
        run_tool(bug)
    with pytest.raises(TypeError, match="unexpected keyword argument 'b'"):
        run_tool(bug_with_keyword)
