"""mmpretrain's own tools on the demo config, run from the copies that ship
inside the installed mmpretrain package (``mmpretrain/.mim/tools``)."""
import ast
import glob
import hashlib
import os
import os.path as osp
import re

import mmpretrain
import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS
from PIL import Image

import sarb_mm  # noqa: F401
from sarb_mm.datasets import CheckedLoadImageFromFile, PartialLabelDataset
from sarb_mm.datasets.synthetic import make_demo_dataset
from sarb_mm.utils.errors import InvalidInputError
from .tiny import REPO, read_scalars, run_tool, tiny_options

TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
CONFIG = 'configs/sarb_r18_demo_p10.py'
EPOCHS = 2
# Runs a tool with sarb_mm imported first (its checkpoint allowlist), for
# tools that do not read a config and so never see custom_imports.
WITH_SARB_MM = ('import runpy, sys, sarb_mm; sys.argv = sys.argv[1:]; '
                "runpy.run_path(sys.argv[0], run_name='__main__')")


def tool(*parts):
    return osp.join(TOOLS, *parts)


def demo_images(data_root, split):
    """Image paths of the generated demo split, in dataset order."""
    dataset = DATASETS.build(
        dict(
            type='SyntheticCocoDataset',
            data_root=data_root,
            split=split,
            num_train=64,
            num_val=40))
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def _pooled(path, size=4):
    """An RGB image averaged over size x size blocks."""
    img = np.asarray(Image.open(path).convert('RGB'), dtype=np.float64)
    h, w = img.shape[0] // size, img.shape[1] // size
    blocks = img[:h * size, :w * size].reshape(h, size, w, size, 3)
    return blocks.mean(axis=(1, 3))


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('demo'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_root):
    """A tiny run by mmpretrain's own train.py, then tools/test.py --out."""
    root = tmp_path_factory.mktemp('trained')
    work_dir = str(root / 'work')
    # mmpretrain's train.py turns persistent workers on unless told not
    # to, which a loader without workers (as in these tiny runs) refuses.
    run_tool([
        tool('train.py'), CONFIG, '--work-dir', work_dir,
        '--no-persistent-workers', '--cfg-options'
    ] + tiny_options(demo_root, epochs=EPOCHS))
    checkpoint = osp.join(work_dir, f'epoch_{EPOCHS}.pth')
    preds = str(root / 'preds.pkl')
    run_tool([
        'tools/test.py', CONFIG, checkpoint, '--work-dir',
        str(root / 'test'), '--out', preds, '--cfg-options'
    ] + tiny_options(demo_root, epochs=EPOCHS))
    log, = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    test_scalars = read_scalars(str(root / 'test'))[-1]
    return dict(
        work_dir=work_dir,
        checkpoint=checkpoint,
        log=log,
        preds=preds,
        test_scalars=test_scalars,
        root=root)


def test_loader_and_pipeline_where_mmpretrain_tools_look(demo_root):
    # verify_dataset.py keeps the transform named exactly LoadImageFromFile.
    from mmpretrain.registry import TRANSFORMS
    assert type(TRANSFORMS.build(
        dict(type='LoadImageFromFile'))) is CheckedLoadImageFromFile
    from mmcv.transforms import LoadImageFromFile
    assert type(TRANSFORMS.build(
        dict(type='mmengine.LoadImageFromFile'))) is LoadImageFromFile

    # It reads train_dataloader.dataset.pipeline: the wrapper's own.
    inner = dict(
        type='SyntheticCocoDataset',
        data_root=demo_root,
        num_train=64,
        num_val=40)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    wrapped = PartialLabelDataset(inner, known_ratio=0.5, pipeline=pipeline)
    sample = wrapped[0]
    assert sample['inputs'].shape == (3, 64, 64)
    np.testing.assert_array_equal(sample['data_samples'].gt_score.numpy(),
                                  wrapped.partial_labels[0])
    # An empty list runs no transform (the tool loads the images itself).
    info = PartialLabelDataset(inner, known_ratio=0.5, pipeline=[])[0]
    assert info['img_path'] == wrapped.get_data_info(0)['img_path']
    with pytest.raises(
            InvalidInputError, match='train_dataloader.dataset.pipeline'):
        PartialLabelDataset(
            dict(inner, pipeline=pipeline), known_ratio=0.5, pipeline=pipeline)


@pytest.mark.slow
def test_browse_dataset_shows_the_partial_label_training_set(
        tmp_path, demo_root):
    # The tool swaps the dataset's pipeline for one that records every
    # intermediate image, which needs PartialLabelDataset.pipeline's setter.
    out = tmp_path / 'browse'
    run_tool([
        tool('visualization', 'browse_dataset.py'), CONFIG, '-o',
        str(out), '--not-show', '-n', '3', '-m', 'original', '--cfg-options'
    ] + tiny_options(demo_root))
    sources = demo_images(demo_root, 'train')[:3]
    assert sorted(os.listdir(out)) == sorted(osp.basename(p) for p in sources)
    for source in sources:
        shown = _pooled(out / osp.basename(source))
        original = _pooled(source)
        assert shown.shape == original.shape
        # The label text covers the top rows; below it is the loaded image,
        # in RGB order (the noisy demo images re-encoded as JPEG differ by
        # about 2 after 4x4 pooling, a swapped channel order by 18 or more).
        half = original.shape[0] // 2
        assert np.abs(shown[half:] - original[half:]).mean() < 5


@pytest.mark.slow
@pytest.mark.parametrize('phase', ['train', 'val'])
def test_verify_dataset_lists_broken_images(tmp_path, phase):
    data_root = str(tmp_path / 'demo')
    make_demo_dataset(data_root, num_train=64, num_val=40)
    split = 'train' if phase == 'train' else 'val'
    images = demo_images(data_root, split)
    undecodable, fifo = images[3], images[7]
    with open(undecodable, 'wb') as f:
        f.write(b'not an image')
    # mmcv's own loader would block on a FIFO forever: only the checked
    # loader of our pipelines refuses it, so the tool must have used that.
    os.remove(fifo)
    os.mkfifo(fifo)
    broken = tmp_path / 'broken.log'
    proc = run_tool(
        [
            tool('misc', 'verify_dataset.py'), CONFIG, '--phase', phase,
            '--out-path',
            str(broken), '--cfg-options'
        ] + tiny_options(data_root),
        timeout=180)
    assert '2 broken files found' in proc.stdout
    assert sorted(broken.read_text().split()) == sorted([undecodable, fifo])


@pytest.mark.slow
def test_verify_dataset_passes_a_clean_dataset(tmp_path, demo_root):
    broken = tmp_path / 'broken.log'
    proc = run_tool([
        tool('misc', 'verify_dataset.py'), CONFIG, '--out-path',
        str(broken), '--cfg-options'
    ] + tiny_options(demo_root))
    assert 'There is no broken file found.' in proc.stdout
    assert not broken.exists()


@pytest.mark.slow
def test_analyze_logs_reads_our_training_log(trained, tmp_path):
    train = [r for r in read_scalars(trained['work_dir']) if 'loss' in r]
    assert len(train) == EPOCHS * 4  # 64 images / batch 16

    proc = run_tool([
        tool('analysis_tools', 'analyze_logs.py'), 'cal_train_time',
        trained['log']
    ])
    times = np.array([r['time'] for r in train])
    mean = float(
        re.search(r'average iter time: ([\d.]+) s/iter', proc.stdout).group(1))
    assert mean == pytest.approx(times.mean(), abs=1e-4)
    # Per epoch, the tool leaves out each epoch's first iteration.
    per_epoch = [times[e * 4 + 1:(e + 1) * 4].mean() for e in range(EPOCHS)]
    slowest = re.search(r'slowest epoch (\d+), average time is ([\d.]+)',
                        proc.stdout)
    assert int(slowest.group(1)) == int(np.argmax(per_epoch)) + 1
    assert float(slowest.group(2)) == pytest.approx(max(per_epoch), abs=1e-4)

    curve = tmp_path / 'curves.png'
    run_tool([
        tool('analysis_tools',
             'analyze_logs.py'), 'plot_curve', trained['log'], '--keys',
        'loss_cls', 'loss_plrb', 'interp-multi-label/mAP', '--out',
        str(curve)
    ])
    with Image.open(curve) as img:
        assert img.size == (1200, 700)  # the default 12*7 inch window


@pytest.mark.slow
def test_eval_metric_matches_the_test_tool(trained):
    # eval_metric.py reads no config, so no custom_imports: the metric is
    # named by its full import path, which mmengine's registry imports.
    proc = run_tool([
        tool('analysis_tools', 'eval_metric.py'), trained['preds'], '--metric',
        'type=sarb_mm.evaluation.InterpolatedMultiLabelMetric'
    ])
    text = proc.stdout
    results = ast.literal_eval(text[text.index('{'):text.rindex('}') + 1])
    expected = {
        k: v
        for k, v in trained['test_scalars'].items()
        if k.startswith('interp-multi-label/')
    }
    assert 'interp-multi-label/mAP' in expected
    assert results == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
def test_get_flops_counts_our_model():
    proc = run_tool(
        [tool('analysis_tools', 'get_flops.py'), CONFIG, '--shape', '64'])
    model = mmpretrain.get_model(osp.join(REPO, CONFIG))
    params = sum(p.numel() for p in model.parameters())
    shown = float(re.search(r'Params: ([\d.]+)M', proc.stdout).group(1))
    assert shown == pytest.approx(params / 1e6, abs=5e-4)

    # Multiply-accumulates of the backbone's convolutions, counted here by
    # hooks, against the tool's backbone row (batch norm adds 0.2 %).
    macs = []

    def count(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        macs.append(output.numel() * module.in_channels // module.groups * k)

    for module in model.backbone.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(count)
    with torch.no_grad():
        model.backbone(torch.zeros(1, 3, 64, 64))
    row = re.search(r'^\|\s+backbone\s+\|[^|]+\|\s+([\d.]+)G\s+\|',
                    proc.stdout, re.M)
    assert float(row.group(1)) * 1e9 == pytest.approx(sum(macs), rel=5e-3)


@pytest.mark.slow
def test_publish_model_with_sarb_mm_imported(trained, demo_root):
    out_dir = trained['root'] / 'publish'
    out_dir.mkdir()
    proc = run_tool([
        '-c', WITH_SARB_MM,
        tool('model_converters', 'publish_model.py'), trained['checkpoint'],
        str(out_dir / 'sarb_demo.pth')
    ])
    published, = glob.glob(str(out_dir / 'sarb_demo_*.pth'))
    assert published in proc.stdout
    with open(published, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert published.endswith(f'-{sha[:8]}.pth')

    # Training state is gone and the rest loads with weights_only=True in a
    # process that never imported sarb_mm (no allowlist needed).
    run_tool([
        '-c', 'import sys, torch; ckpt = torch.load(sys.argv[1], '
        'weights_only=True); assert sorted(ckpt) == '
        "['meta', 'state_dict'], sorted(ckpt)", published
    ])
    original = torch.load(trained['checkpoint'], weights_only=True)
    weights = torch.load(published, weights_only=True)['state_dict']
    assert weights.keys() == original['state_dict'].keys()
    for key, value in original['state_dict'].items():
        assert torch.equal(weights[key], value), key

    # Our test tool evaluates the published file to the same numbers.
    run_tool([
        'tools/test.py', CONFIG, published, '--work-dir',
        str(out_dir / 'test'), '--cfg-options'
    ] + tiny_options(demo_root, epochs=EPOCHS))
    again = read_scalars(str(out_dir / 'test'))[-1]
    assert again['interp-multi-label/mAP'] == pytest.approx(
        trained['test_scalars']['interp-multi-label/mAP'], abs=1e-9)
