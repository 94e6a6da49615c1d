voc_average_precision = multilabel_prf = None
