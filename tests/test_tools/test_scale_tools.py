"""The scale simulation and the GPU check run (at CPU sizes) so they
cannot rot; their figures at full size are in docs/scaling.md."""
import pytest

from .tiny import load_tool


@pytest.mark.slow
def test_simulate_scale_measures_build_and_a_flat_pass(tmp_path, capsys):
    tool = load_tool('tools/analysis/simulate_scale.py')
    result = tool.main([
        '--images', '3000', '--num-classes', '50', '--pass-images', '1500',
        '6000', '--cap', '16', '--dim', '32', '--kmeans-classes', '2',
        '--work-dir',
        str(tmp_path), '--json',
        str(tmp_path / 'r.json')
    ])
    build = result['build']
    assert build['images'] == 3000 and build['classes'] == 50
    assert build['known'] == 3000 * 6
    assert build['held_bytes'] / 3000 <= 256
    small, large = result['passes']
    # Every class is full (6000 images x 2.4 positives / 50 classes > 16):
    # the kept features, and the buffer, do not grow with the images.
    assert large['kept'] == 50 * 16
    assert small['buffer_bytes'] == large['buffer_bytes'] == 50 * 16 * 32 * 4
    assert large['positives'] > 3 * small['positives']
    assert large['kmeans_classes'] == 2 and large['kmeans_median'] > 0
    out = capsys.readouterr().out
    assert '(a) OpenImagesPartialDataset build' in out
    assert (tmp_path / 'r.json').is_file()


@pytest.mark.slow
def test_gpu_check_runs_on_a_cpu(tmp_path, capsys):
    tool = load_tool('tools/analysis/gpu_check.py')
    rows = tool.main([
        '--tiny', '--methods', 'sarb', '--train-images', '16', '--work-dir',
        str(tmp_path)
    ])
    (row, ) = rows
    assert row['run'] == 'sarb'
    assert row['iterations'] == 2 * 16 // 8
    assert row['pass_seconds'] is not None  # the pass of epoch 2 ran
    assert row['mAP'] is not None  # and the evaluation
    assert row['resumed'] is True
    assert row['images_per_second'] > 0
    assert '| sarb | 4 |' in capsys.readouterr().out


def test_metric_benchmark_runs(capsys):
    tool = load_tool('tools/analysis/benchmark_metric.py')
    tool.main(['--num-images', '30', '--num-classes', '6', '--repeats', '1'])
    out = capsys.readouterr().out
    assert '30 x 6, median of 1 repeats' in out
    assert 'metric.compute_metrics (all)' in out
