from .graph_head import GraphClassifierHead
from .sarb_head import SARBHead
from .sst_head import SSTHead, sst_margin

__all__ = ['GraphClassifierHead', 'SARBHead', 'SSTHead', 'sst_margin']
