"""Multi-process helpers that also work in a plain single process.

Launchers (``torchrun`` and ``accelerate launch``) start one process per worker and set
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`init_from_env`
reads them and initialises ``torch.distributed`` (gloo for CPU tensors, nccl for CUDA); every other
helper is a no-op (or the identity) when ``WORLD_SIZE`` is 1 or unset, so library code calls them
unconditionally.

Launching 2 CPU processes on one machine (tested offline with accelerate 1.15 / torch 2.13)::

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no --main_process_port 0 -m advlab.cli.main train classifier ... --device cpu
    torchrun --standalone --nproc_per_node 2 -m advlab.cli.main train classifier ... --device cpu

``python -m accelerate.commands.launch`` and ``python -m torch.distributed.run`` are the same launchers
without relying on ``PATH``; :func:`launch_argv` builds them. ``--standalone`` and ``--main_process_port 0``
pick a free port.

A script of your own that calls advlab under a launcher should end with :func:`shutdown` (the CLI does),
so that every process leaves the process group together.

``--multi_gpu`` only selects accelerate's torchrun-based launcher: without CUDA (or with
``--device cpu``) the workers run on the CPU over gloo. ``accelerate launch --cpu --num_processes 2``
does *not* work: the CPU launcher starts a single process unless it is given ``--mpirun_hostfile``
(and mpirun, which is not installed here).
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
LAUNCHERS = ("accelerate", "torchrun")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on this machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    from advlab.errors import ConfigError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={raw!r} is not an integer; unset it or fix the launcher"
        ) from None


def env_info() -> DistInfo:
    """Rank, world size and local rank from the launcher's environment (0, 1, 0 when absent)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistInfo()
    return DistInfo(_env_int("RANK", 0), world, _env_int("LOCAL_RANK", 0))


def is_initialized() -> bool:
    if "torch.distributed" not in sys.modules:
        return False  # no group can exist, and ``advlab --help`` need not import torch to learn that
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def info() -> DistInfo:
    """This process's place: from the initialised process group, else from the environment."""
    if is_initialized():
        import torch.distributed as dist

        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return env_info()


def rank() -> int:
    return info().rank


def world_size() -> int:
    return info().world_size


def is_main() -> bool:
    return info().is_main


def local_device(device: Any) -> Any:
    """``device`` as a ``torch.device``; a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process)."""
    import torch

    dev = torch.device(device)
    env = env_info()
    if dev.type == "cuda" and dev.index is None and env.active:
        n = torch.cuda.device_count()
        if env.local_rank >= n:
            from advlab.errors import ConfigError

            raise ConfigError(
                f"process LOCAL_RANK={env.local_rank} has no GPU of its own ({n} visible); "
                f"launch at most {n} processes per machine or pass --device cpu"
            )
        dev = torch.device("cuda", env.local_rank)
    return dev


def init_from_env(device: Any = "cpu") -> DistInfo:
    """Initialise ``torch.distributed`` when launched with ``WORLD_SIZE`` > 1 (idempotent).

    Backend: nccl when ``device`` is CUDA, gloo otherwise (a CPU run on a GPU machine uses gloo).
    Returns this process's :class:`DistInfo` (rank 0 of 1 without a launcher; nothing is initialised).
    """
    import torch
    import torch.distributed as dist

    env = env_info()
    if not env.active or is_initialized():
        return info()
    from advlab.errors import ConfigError

    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run a single process")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ConfigError(f"WORLD_SIZE > 1 but {name} is unset; start the job with torchrun or accelerate launch")
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_device(dev))
    # torch._dynamo (imported lazily, e.g. by the first optimizer) keeps references to a process group that
    # exists when it is imported; destroy_process_group then cannot free the group, its gloo worker threads
    # live on into interpreter shutdown, and one that frees a tensor there aborts the process ("terminate
    # called without an active exception"; core dump: ProcessGroupGloo::runLoop -> ~AsyncBroadcastWork ->
    # take_gil -> pthread_exit in Py_FinalizeEx). Imported first, it holds none.
    import torch._dynamo  # noqa: F401

    dist.init_process_group(backend=backend)
    atexit.register(_destroy)
    return info()


def _destroy() -> None:
    if is_initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def shutdown() -> None:
    """Leave the process group together: wait for every process, then destroy the group (no-op alone).

    The CLI calls it once at the end of a successful command, so that no process tears its connections
    down while a peer still works (rank 1 used to exit while rank 0 wrote the report), and the group's
    gloo threads are joined before the interpreter shuts down (see :func:`init_from_env`). If a peer has
    already died the barrier fails; the group is then destroyed without it (the launcher reports the dead
    peer).
    """
    if not is_initialized():
        return
    import contextlib

    with contextlib.suppress(RuntimeError):
        barrier()
    _destroy()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if info().active and is_initialized():
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(tensor: Any) -> Any:
    """Sum ``tensor`` over processes in place and return it (identity in a single process)."""
    if info().active and is_initialized():
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every process (picklable objects; identity in a single process)."""
    if not (info().active and is_initialized()):
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_module(module: Any, src: int = 0, *, buffers_only: bool = False) -> None:
    """Copy rank ``src``'s parameters (and buffers, e.g. BatchNorm statistics) into every process's module."""
    if not (info().active and is_initialized()):
        return
    import torch.distributed as dist

    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    tensors += [b for b in module.buffers()]
    for t in tensors:
        dist.broadcast(t, src=src)


def main_first(fn: Callable[[], T]) -> T | None:
    """Run ``fn`` on rank 0 while the others wait; rank 0's exception is raised on every rank.

    Returns ``fn()``'s result on rank 0 and ``None`` elsewhere. An :class:`advlab.errors.AdvlabError`
    is re-raised with the same class and message on the other ranks (so every process exits with 2);
    any other exception becomes a ``RuntimeError`` there.
    """
    d = info()
    if not (d.active and is_initialized()):
        return fn()
    result: T | None = None
    failure: tuple[str, str] | None = None
    if d.is_main:
        try:
            result = fn()
        except BaseException as exc:
            broadcast_object((type(exc).__name__, str(exc)))
            raise
    failure = broadcast_object(failure)
    if failure is not None and not d.is_main:
        from advlab import errors

        cls = getattr(errors, failure[0], None)
        if isinstance(cls, type) and issubclass(cls, errors.AdvlabError):
            raise cls(failure[1])
        raise RuntimeError(f"rank 0 failed with {failure[0]}: {failure[1]}")
    return result


def launch_argv(launcher: str, nproc: int, python: str | None = None) -> list[str]:
    """The command prefix that starts ``nproc`` local processes of ``python -m MODULE ARGS`` (append them).

    ``accelerate``: ``accelerate launch --multi_gpu --num_processes N --num_machines 1 --mixed_precision no
    --dynamo_backend no --main_process_port 0 -m``; ``torchrun``: ``torchrun --standalone --nproc_per_node N
    -m``. Both run through ``python`` (default: this interpreter), so they work without ``PATH``.
    """
    import sys

    from advlab.errors import ConfigError

    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"nproc={nproc!r} must be an integer >= 1")
    py = python or sys.executable
    if launcher == "accelerate":
        if nproc < 2:
            raise ConfigError("accelerate launch --multi_gpu needs nproc >= 2; run one process without a launcher")
        return [
            py,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(nproc),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "0",
            "-m",
        ]
    if launcher == "torchrun":
        return [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m"]
    raise ConfigError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")
