from .dsrb_head import DSRBHead
from .graph_head import ClassPrototypes, GraphClassifierHead
from .hst_head import HSTHead
from .pair_branch_head import PairBranchHead
from .sarb_head import SARBHead
from .sst_head import SSTHead, sst_margin

__all__ = [
    'GraphClassifierHead', 'ClassPrototypes', 'PairBranchHead', 'SARBHead',
    'SSTHead', 'HSTHead', 'DSRBHead', 'sst_margin'
]
