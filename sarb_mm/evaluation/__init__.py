from .functional import (multilabel_prf, split_partial_targets,
                         voc_average_precision)
from .metrics import DumpResultsWithClasses, InterpolatedMultiLabelMetric
from .predictions import (DumpPredictionArrays, load_prediction_arrays,
                          load_prediction_pickle, save_prediction_arrays)
from .report import per_class_report

__all__ = [
    'voc_average_precision', 'multilabel_prf', 'InterpolatedMultiLabelMetric',
    'DumpResultsWithClasses', 'per_class_report', 'split_partial_targets',
    'DumpPredictionArrays', 'load_prediction_arrays', 'load_prediction_pickle',
    'save_prediction_arrays'
]
