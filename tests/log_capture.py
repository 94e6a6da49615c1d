"""Collect the warnings logged to the current MMLogger."""
import contextlib
import itertools
import logging

from mmengine.logging import MMLogger

# MMLogger.get_current_instance() is the newest instance created, and
# get_instance() of an existing name creates none: a fresh name each time.
_FRESH = itertools.count()


class _Collect(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def collect_warnings(name='sarb_test_datasets_warnings'):
    """Make a fresh MMLogger current; yield the list of its WARNING (and
    above) messages, filled while the block runs."""
    logger = MMLogger.get_instance(f'{name}_{next(_FRESH)}')
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
