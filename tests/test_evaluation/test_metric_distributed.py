"""Two gloo processes: collecting results across ranks keeps float64."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests.gloo import free_port, gloo_group

pytestmark = pytest.mark.slow

# Class 0: negatives at logits 17.2 / 17.4 / -3, positives at 19 / 21. The
# sigmoids are distinct only in float64 (float32 rounds the top four to
# 1.0 or its neighbour), so AP 100 survives only without a downcast.
LOGITS = torch.tensor(
    [[17.2, 0.3], [19.0, -1.0], [17.4, 2.0], [21.0, 0.5], [-3.0, 1.5]],
    dtype=torch.float64)
GT_LABELS = [[], [0, 1], [1], [0], [1]]


def _samples(indices):
    scores = torch.sigmoid(LOGITS)
    return [
        dict(
            pred_score=scores[i],
            gt_label=torch.tensor(GT_LABELS[i]),
            sample_idx=i) for i in indices
    ]


def _evaluate(indices, collect_device, out_file=None):
    from sarb_mm.evaluation import InterpolatedMultiLabelMetric
    metric = InterpolatedMultiLabelMetric(
        topk=1, per_class=True, collect_device=collect_device)
    compute = metric.compute_metrics
    dtypes = []

    def spy(results):
        dtypes.extend(str(r['pred_score'].dtype) for r in results)
        return compute(results)

    metric.compute_metrics = spy
    metric.process(None, _samples(indices))
    out = metric.evaluate(size=len(LOGITS))
    if out_file is not None:
        with open(out_file, 'wb') as f:
            pickle.dump(dict(metrics=out, dtypes=dtypes), f)
    return out, dtypes


def _worker(rank, port, out_dir):
    with gloo_group(rank, port):
        # As DistributedSampler splits 5 samples: rank 1 gets a padded
        # copy of sample 0, which collect_results must drop.
        indices = [0, 2, 4] if rank == 0 else [1, 3, 0]
        for device in ('cpu', 'gpu'):
            out_file = osp.join(out_dir, f'{device}_rank{rank}.pkl')
            _evaluate(indices, device, out_file)


def test_two_rank_collection_keeps_float64(tmp_path):
    single, dtypes = _evaluate(range(len(LOGITS)), 'cpu')
    assert dtypes == ['float64'] * 5
    assert single['interp-multi-label/AP_0'] == 100.0
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    # 'gpu' collection pickles objects into tensors (all_gather_object);
    # under gloo it runs on CPU, through the same code path.
    for device in ('cpu', 'gpu'):
        for rank in (0, 1):
            with open(tmp_path / f'{device}_rank{rank}.pkl', 'rb') as f:
                got = pickle.load(f)
            assert got['metrics'] == single, (device, rank)
            # Only rank 0 computes; it saw the 5 samples, all float64.
            expected = ['float64'] * 5 if rank == 0 else []
            assert got['dtypes'] == expected, (device, rank)
    np.testing.assert_allclose(single['interp-multi-label/mAP'],
                               (100 + single['interp-multi-label/AP_1']) / 2)
