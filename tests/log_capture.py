"""Collect the warnings logged to the current MMLogger."""
import contextlib
import logging

from mmengine.logging import MMLogger


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
    logger = MMLogger.get_instance(name)
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
