InterpolatedMultiLabelMetric = None
