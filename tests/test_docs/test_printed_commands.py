"""The commands printed in the README and the documentation work as printed.

Every ``bash``/``shell`` block of README.md, CONTRIBUTING.md and docs/*.md
is read: each command's scripts, configs and requirement files must exist
and our tools must accept its arguments. The demo-sized ones (the quick
start, using its checkpoint, evaluating it, the JSON Lines demo) are run,
verbatim, in a workspace whose demo configs are shrunk to a tiny model and
dataset, so that the printed text cannot drift from the code.
"""
import glob
import os
import os.path as osp
import re
import shlex
import sys
import time

import pytest

from tests.test_tools.tiny import REPO, load_tool, run_in_process

DOC_FILES = ['README.md', 'CONTRIBUTING.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md')))
DEMO_CONFIG = 'configs/sarb_r18_demo_p10.py'
DEMO_CHECKPOINT = 'work_dirs/sarb_r18_demo_p10/epoch_8.pth'
# Placeholders of the documented synopses, filled with the quick start's
# config, checkpoint and images.
PLACEHOLDERS = {
    'CONFIG': DEMO_CONFIG,
    'CKPT': DEMO_CHECKPOINT,
    'CHECKPOINT': DEMO_CHECKPOINT,
    'photos/': 'data/demo/val/',
}
# Synopses and commands that need what a test cannot have (a real dataset,
# a GPU cluster, a log of a named run, shell variables).
UNPARSABLE = re.compile(r'[<>\[\]$|]|\.\.\.|WORK_DIR|PARTITION|JOB\b')
# Commands whose runs other tests make anyway, with the same tool and
# config (their arguments are still checked above): the multi-run tools
# (tests/test_analysis, tests/test_tools/test_mim.py) and the JSON Lines
# demo's training and test (tests/test_tools/test_jsonl_demo.py).
NOT_RUN = ('compare_on_demo.py', 'sweep.py', 'mim ', 'pip ', 'pytest',
           'train.py configs/sarb_r18_demo-jsonl.py',
           'train.py configs/baseline_r18_demo-jsonl.py',
           'test.py configs/sarb_r18_demo-jsonl.py')


def printed_commands():
    """``(file, command)`` for every command of the shell blocks."""
    commands = []
    for name in DOC_FILES:
        with open(osp.join(REPO, name), encoding='utf-8') as f:
            text = f.read()
        for block in re.findall(r'^```(?:bash|shell|sh)\n(.*?)^```', text,
                                re.S | re.M):
            for line in re.sub(r'\\\n\s*', ' ', block).split('\n'):
                line = re.sub(r'(^|\s)#.*', '', line).strip()
                if line.startswith('('):
                    continue  # a subshell: not one of our commands
                for command in line.split(' && '):
                    if command.strip():
                        commands.append((name, command.strip()))
    return commands


def fill(command):
    tokens = shlex.split(command)
    while tokens and re.fullmatch(r'[A-Z_]+=\S*', tokens[0]):
        tokens.pop(0)  # environment variables of a launcher line
    return [PLACEHOLDERS.get(t, t) for t in tokens]


COMMANDS = printed_commands()


def test_the_blocks_are_found():
    assert len(COMMANDS) > 60
    assert ('README.md', f'python tools/train.py {DEMO_CONFIG}') in COMMANDS


@pytest.mark.parametrize(
    'doc,command', COMMANDS, ids=[f'{d}:{c[:60]}' for d, c in COMMANDS])
def test_printed_command_names_real_files_and_valid_arguments(
        doc, command, monkeypatch):
    tokens = fill(command)
    for token in tokens:
        for path in re.findall(r'(?:configs|requirements)/[\w./-]+', token):
            assert osp.exists(osp.join(REPO, path)), (
                f'{doc}: `{command}` names {path}, which does not exist')
    scripts = [t for t in tokens if re.fullmatch(r'tools/[\w/.-]+', t)]
    for script in scripts:
        assert osp.isfile(osp.join(REPO, script)), (
            f'{doc}: `{command}` runs {script}, which does not exist')
    if tokens[:1] == ['pip'] and '-e' in tokens:
        extra = re.search(r'\[(\w+)\]', ' '.join(tokens))
        if extra:
            with open(osp.join(REPO, 'setup.py')) as f:
                extras = re.search(r'extras_require=\{(.*?)\}', f.read(),
                                   re.S).group(1)
            assert f"'{extra.group(1)}':" in extras, (
                f'{doc}: `{command}` asks for the extra {extra.group(1)!r}, '
                'which setup.py does not define')
    if (tokens[:1] != ['python'] or len(tokens) < 2
            or not tokens[1].startswith('tools/')
            or UNPARSABLE.search(' '.join(tokens))):
        return
    tool = load_tool(tokens[1])
    monkeypatch.setattr(sys, 'argv', tokens[1:])
    try:
        tool.parse_args()
    except SystemExit as err:
        pytest.fail(f'{doc}: `{command}`: {tokens[1]} rejects its '
                    f'arguments (exit status {err.code})')


@pytest.mark.parametrize('table', ['demo-table', 'speed-table'])
def test_readme_and_results_page_show_the_same_table(table):
    tables = []
    for name in ('README.md', 'docs/results.md'):
        with open(osp.join(REPO, name), encoding='utf-8') as f:
            text = f.read()
        found = re.findall(
            f'<!-- {table}:start -->\n(.*?)<!-- {table}:end -->', text, re.S)
        assert len(found) == 1, f'{name}: one marked {table} expected'
        tables.append(found[0])
    assert tables[0] == tables[1]


# ---------------------------------------------------------------------------
# Running the demo-sized commands
# ---------------------------------------------------------------------------

TINY_DEMO = """
model = dict(
    backbone=dict(base_channels=16, stem_channels=16),
    {head})
train_dataloader = dict(batch_size=16, num_workers=0{train_data})
val_dataloader = dict(num_workers=0{val_data})
test_dataloader = dict(num_workers=0{val_data})
default_hooks = dict(logger=dict(interval=1))
train_cfg = dict(val_interval=8)
"""
TINY_SARB = ('neck=dict(in_channels=128, feat_channels=64, attn_channels=32, '
             'embed_dims=16), head=dict(in_channels=64, out_channels=64)')
# 120 validation images: the documented commands read val_000116.jpg.
DEMO_SIZES = 'num_train=64, num_val=120'


def _shrink(config, sarb, generated):
    """The config's text with the tiny overrides, as a child of a copy."""
    train_data = (f', dataset=dict(dataset=dict({DEMO_SIZES}))'
                  if generated else '')
    val_data = f', dataset=dict({DEMO_SIZES})' if generated else ''
    return (f"_base_ = ['./_printed_{config}']\n" + TINY_DEMO.format(
        head=TINY_SARB if sarb else 'head=dict(in_channels=128)',
        train_data=train_data,
        val_data=val_data))


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A directory that looks like the repository to the commands, with
    the demo configs shrunk (same names, so the commands stay verbatim)."""
    root = tmp_path_factory.mktemp('printed')
    os.symlink(osp.join(REPO, 'tools'), root / 'tools')
    os.makedirs(root / 'docs' / 'figures')
    configs = root / 'configs'
    configs.mkdir()
    shrunk = {
        'sarb_r18_demo_p10.py': (True, True),
        'baseline_r18_demo_p10.py': (False, True),
        'sarb_r18_demo-jsonl.py': (True, False),
        'baseline_r18_demo-jsonl.py': (False, False),
    }
    for name in os.listdir(osp.join(REPO, 'configs')):
        source = osp.join(REPO, 'configs', name)
        if name in shrunk:
            os.symlink(source, configs / f'_printed_{name}')
            (configs / name).write_text(_shrink(name, *shrunk[name]))
        else:
            os.symlink(source, configs / name)
    return root


def _runnable(command):
    tokens = fill(command)
    text = ' '.join(tokens)
    return (tokens[:1] == ['python'] and not UNPARSABLE.search(text)
            and not any(n in command for n in NOT_RUN)
            and re.search(r'_demo|data/demo|work_dirs/eval', text))


def _run(tokens, cwd):
    if tokens[1] == 'tools/make_demo_dataset.py':
        # Enough images that every class has a verified positive, which
        # check_data.py requires.
        tokens = tokens + [
            '--num-train', '160', '--num-val', '40', '--image-size', '32'
        ]
    # In this process: the installed sarb_mm, as the printed command
    # would import it, without starting Python (and torch) again.
    proc = run_in_process(tokens[1:], cwd=cwd)
    assert proc.returncode == 0, (f'`{" ".join(tokens)}` failed:\n' +
                                  proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


@pytest.mark.slow
def test_demo_commands_run_as_printed(workspace):
    """The quick start first (its checkpoint is what the others use), then
    every demo-sized command in the order the pages print them."""
    quick_start = f'python tools/train.py {DEMO_CONFIG}'
    runnable = [(d, c) for d, c in COMMANDS if _runnable(c)]
    assert ('README.md', quick_start) in runnable
    order = [quick_start] + [c for _, c in runnable if c != quick_start]
    seen = set()
    for command in order:
        tokens = fill(command)
        if tuple(tokens) in seen:
            continue
        seen.add(tuple(tokens))
        start = time.time()
        _run(tokens, str(workspace))
        print(f'{time.time() - start:6.1f} s  {command}')
    assert osp.isfile(workspace / DEMO_CHECKPOINT)
    assert osp.isfile(workspace / 'docs' / 'figures' / 'attention_demo.png')
    assert osp.isfile(workspace / 'work_dirs' / 'eval' / 'per_class.csv')
    assert len(seen) >= 12
