from .checkpoint_safety import (register_safe_checkpoint_globals,
                                restricted_getattr)

__all__ = ['register_safe_checkpoint_globals', 'restricted_getattr']
