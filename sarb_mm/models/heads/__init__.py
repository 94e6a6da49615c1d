from .sarb_head import SARBHead

__all__ = ['SARBHead']
