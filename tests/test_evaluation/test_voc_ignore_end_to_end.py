"""VOC difficult='ignore' through the shipped test pipeline and the metric."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import DATASETS, METRICS

import sarb_mm  # noqa: F401
from sarb_mm.evaluation import voc_average_precision
from tests.test_datasets.fixtures import write_voc
from tests.test_tools.tiny import REPO


@pytest.mark.parametrize('mode', ['ignore', 'negative'])
def test_difficult_only_entries_follow_the_mode(tmp_path, mode):
    # person is a positive elsewhere and difficult-only in 000002.
    objects = {
        '000005': [('chair', 0), ('person', 0)],
        '000002': [('train', 0), ('person', 1)],
        '000009': [('horse', 0), ('person', 0)],
        '000012': [('car', 0)],
    }
    labels, difficult_only = write_voc(
        str(tmp_path),
        objects=objects,
        split_ids=list(objects),
        return_difficult=True)
    assert difficult_only.sum() == 1
    cfg = Config.fromfile(f'{REPO}/configs/_base_/datasets/voc2007_partial.py')
    data_cfg = cfg.test_dataloader.dataset
    data_cfg.update(data_root=str(tmp_path), split='trainval', difficult=mode)
    dataset = DATASETS.build(data_cfg)

    rng = np.random.default_rng(0)
    scores = rng.random(labels.shape)
    # Rank the difficult-only entries first: counted as negatives they hurt.
    scores[difficult_only > 0] = 2.0
    metric = METRICS.build(dict(type='InterpolatedMultiLabelMetric'))
    metric.dataset_meta = dataset.metainfo
    samples = []
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        sample.set_pred_score(torch.from_numpy(scores[idx]))
        samples.append(sample.to_dict())
    metric.process(None, samples)
    result = metric.evaluate(len(dataset))

    valid = (difficult_only == 0) if mode == 'ignore' else None
    ap = voc_average_precision(scores, labels, valid=valid)
    assert result['interp-multi-label/mAP'] == pytest.approx(
        np.nanmean(ap) * 100)
    other = voc_average_precision(
        scores,
        labels,
        valid=None if mode == 'ignore' else (difficult_only == 0))
    assert np.nanmean(other) != pytest.approx(np.nanmean(ap))
