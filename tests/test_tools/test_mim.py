"""mim on sarb_mm: ``mim train/test sarb_mm`` run the package's own tools and
configs from ``sarb_mm/.mim`` (linked by an editable install, copied into a
wheel), and ``mim search sarb_mm`` reads ``model-index.yml``."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from mmengine.config import Config
from modelindex.load_model_index import load as load_model_index

from .tiny import REPO, read_scalars, tiny_options

CONFIG = 'configs/sarb_r18_demo_p10.py'
EPOCHS = 2
MIM_FILES = ('tools', 'configs', 'model-index.yml')
# What a source distribution carries (MANIFEST.in), minus the tests.
SOURCE = ('setup.py', 'setup.cfg', 'MANIFEST.in', 'README.md', 'LICENSE',
          'CHANGELOG.md', 'CITATION.cff', 'model-index.yml', 'requirements',
          'sarb_mm', 'tools', 'configs')
DATASET_NAMES = {
    'CocoMultiLabelDataset': 'COCO 2014',
    'VOC2007MultiLabelDataset': 'Pascal VOC 2007',
    'VG200MultiLabelDataset': 'Visual Genome 200',
    'SyntheticCocoDataset': 'Generated demo shapes',
}
NATIVE_DATASET_NAMES = {
    'JsonLinesPartialDataset':
    'Generated demo shapes, JSON Lines partial labels',
    'OpenImagesPartialDataset':
    'OpenImages V6 human-verified labels (600 boxable classes)',
    'LVISPartialDataset': 'LVIS v1',
}


def _need_mim():
    try:
        import mim  # noqa: F401
    except Exception as err:  # also a missing pkg_resources
        reason = (
            f'openmim cannot be imported ({type(err).__name__}: {err}). '
            'Install it as requirements/mim.txt says: pip install --no-deps '
            'openmim==0.3.9 && pip install -r requirements/mim.txt')
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)


def _mim(args, cwd, pythonpath, timeout=600):
    """``python -m mim ARGS`` in ``cwd``; fail with its output on error."""
    env = dict(os.environ, PYTHONPATH=pythonpath)
    proc = subprocess.run(
        [sys.executable, '-m', 'mim'] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def _final_map(work_dir):
    return [
        r for r in read_scalars(work_dir) if 'interp-multi-label/mAP' in r
    ][-1]['interp-multi-label/mAP']


@pytest.fixture(scope='module')
def mim_trained(tmp_path_factory):
    """``python -m mim train sarb_mm configs/...`` from the repository root
    after ``pip install -e .``, as docs/openmmlab_tools.md prints it."""
    _need_mim()
    root = tmp_path_factory.mktemp('mim')
    demo_root, work_dir = str(root / 'demo'), str(root / 'work')
    # `python -m` puts the working directory first on sys.path, where an
    # editable install leaves sarb_mm.egg-info: mim then finds the package
    # in the source tree (the `mim` script alone would look in
    # site-packages, where an editable install has no files).
    proc = _mim(
        ['train', 'sarb_mm', CONFIG, '--work-dir', work_dir, '--cfg-options'] +
        tiny_options(demo_root, epochs=EPOCHS),
        cwd=REPO,
        pythonpath=REPO)
    return dict(
        root=root,
        demo_root=demo_root,
        work_dir=work_dir,
        stdout=proc.stdout,
        checkpoint=osp.join(work_dir, f'epoch_{EPOCHS}.pth'))


def test_editable_install_links_the_mim_files():
    for name in MIM_FILES:
        linked = osp.join(REPO, 'sarb_mm', '.mim', name)
        assert osp.exists(linked), (
            f'{linked} is missing: install the package with `pip install -e '
            '.` (setup.py links tools/, configs/ and model-index.yml there '
            'for mim).')
        assert osp.samefile(linked, osp.join(REPO, name))


@pytest.mark.slow
def test_mim_train_runs_our_train_tool(mim_trained):
    script = osp.join(REPO, 'sarb_mm', '.mim', 'tools', 'train.py')
    assert f'Training command is {sys.executable} {script} {CONFIG}' in \
        mim_trained['stdout']
    assert 'Training finished successfully' in mim_trained['stdout']
    train = [r for r in read_scalars(mim_trained['work_dir']) if 'loss' in r]
    assert len(train) == EPOCHS * 4  # 64 images / batch 16
    assert 'loss_plrb' in train[-1]  # the SARB head trained
    assert osp.isfile(mim_trained['checkpoint'])
    assert osp.isfile(osp.join(mim_trained['work_dir'], 'partial_labels.npy'))


@pytest.mark.slow
def test_mim_test_matches_the_training_validation(mim_trained):
    work_dir = str(mim_trained['root'] / 'test')
    proc = _mim(
        [
            'test', 'sarb_mm', CONFIG, '--checkpoint',
            mim_trained['checkpoint'], '--work-dir', work_dir, '--cfg-options'
        ] + tiny_options(mim_trained['demo_root'], epochs=EPOCHS),
        cwd=REPO,
        pythonpath=REPO)
    script = osp.join(REPO, 'sarb_mm', '.mim', 'tools', 'test.py')
    assert f'Testing command is {sys.executable} {script}' in proc.stdout
    # The demo config validates and tests on the same split.
    assert _final_map(work_dir) == pytest.approx(
        _final_map(mim_trained['work_dir']), abs=1e-9)


@pytest.mark.slow
def test_mim_finds_configs_and_tools_of_an_installed_wheel(
        mim_trained, tmp_path):
    source, site = tmp_path / 'source', tmp_path / 'site'
    source.mkdir()
    for name in SOURCE:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(
                path,
                source / name,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '.mim'))
        else:
            shutil.copy(path, source / name)
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
        '--no-build-isolation', '--no-index', '--target',
        str(site),
        str(source)
    ],
                   check=True,
                   capture_output=True,
                   timeout=300)
    mim_dir = site / 'sarb_mm' / '.mim'
    for name in MIM_FILES:
        assert not osp.islink(mim_dir / name)  # copies, not links
    with open(mim_dir / 'tools' / 'test.py') as f, \
            open(osp.join(REPO, 'tools', 'test.py')) as g:
        assert f.read() == g.read()

    # A user's directory, and the config named without a path: mim finds
    # it under sarb_mm/.mim/configs of the installed package.
    cwd = tmp_path / 'elsewhere'
    cwd.mkdir()
    work_dir = str(tmp_path / 'test')
    proc = _mim(
        [
            'test', 'sarb_mm',
            osp.basename(CONFIG), '--checkpoint', mim_trained['checkpoint'],
            '--work-dir', work_dir, '--cfg-options'
        ] + tiny_options(mim_trained['demo_root'], epochs=EPOCHS),
        cwd=str(cwd),
        pythonpath=str(site))
    config = osp.join(str(mim_dir), 'configs', osp.basename(CONFIG))
    assert f'will use {config} instead' in proc.stdout
    assert (f'Testing command is {sys.executable} '
            f'{mim_dir}/tools/test.py {config}') in proc.stdout
    assert _final_map(work_dir) == pytest.approx(
        _final_map(mim_trained['work_dir']), abs=1e-9)

    proc = _mim(['search', 'sarb_mm'], cwd=str(cwd), pythonpath=str(site))
    configs = glob.glob(osp.join(REPO, 'configs', '*.py'))
    for path in configs:
        name = osp.splitext(osp.basename(path))[0]
        assert f'config id: {name}\n' in proc.stdout


def test_model_index_describes_every_config():
    index = load_model_index(osp.join(REPO, 'model-index.yml'))
    assert index.check(silent=True) == []
    models = {model.name: model for model in index.models}
    configs = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))
    assert sorted(models) == sorted(
        osp.splitext(osp.basename(p))[0] for p in configs)
    collections = {c.name for c in index.collections}
    for path in configs:
        model = models[osp.splitext(osp.basename(path))[0]]
        assert model.config == osp.relpath(path, REPO)
        assert model.weights is None  # none published yet
        assert model.in_collection in collections
        cfg = Config.fromfile(path)
        # What lets mmpretrain's tools (and mim) build our components.
        assert cfg.custom_imports == dict(
            imports=['sarb_mm'], allow_failed_imports=False)
        meta = model.metadata.data
        train = cfg.train_dataloader
        if train.dataset.type == 'PartialLabelDataset':
            assert meta['Known Label Proportion'] == \
                train.dataset.known_ratio
            assert meta['Training Data'] == DATASET_NAMES[
                train.dataset.dataset.type]
        else:  # natively partial labels: nothing is hidden
            assert meta.get('Known Label Proportion') is None
            assert meta['Training Data'] == NATIVE_DATASET_NAMES[
                train.dataset.type]
        assert meta['Epochs'] == cfg.train_cfg.max_epochs
        assert meta['Batch Size'] == train.batch_size
        sarb = cfg.model.head.type in ('SARBHead', 'DSRBHead')
        assert model.in_collection == dict(
            SARBHead='SARB', SSTHead='SST', HSTHead='HST',
            DSRBHead='DSRB').get(cfg.model.head.type, 'Partial-BCE')
        assert ('Spatial Quadrant Prototypes' in meta['Architecture']) == (
            cfg.model.head.type == 'DSRBHead')
        for branch in ('ilrb', 'plrb'):
            used = sarb and cfg.model.head.get(f'use_{branch}', True)
            assert (branch.upper() in meta['Architecture']) == used, path
