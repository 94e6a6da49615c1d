"""Two-process tests on a CPU: a free port and a gloo process group."""
import contextlib
import socket

import torch.distributed as torch_dist


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gloo_group(rank: int, port: int, world_size: int = 2):
    """This process as ``rank`` of a gloo group, left together at the end:
    a rank that tears gloo down while its peer still talks to it aborts
    ("terminate called without an active exception")."""
    torch_dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    try:
        yield
    finally:
        torch_dist.barrier()
        torch_dist.destroy_process_group()
