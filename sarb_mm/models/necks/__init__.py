from .semantic_decoupling import SemanticDecouplingNeck

__all__ = ['SemanticDecouplingNeck']
