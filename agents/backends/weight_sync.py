"""How new weights travel to rollout engines that live in other processes.

Two ways, both used by :mod:`agentropy.agents.backends.ray_engines`:

* Through Ray's object store (``cluster.weight_sync=object_store``): :func:`shareable` turns a
  state dict into flat byte arrays that the store hands to every reader without a copy (pickled
  tensors are copied per reader); :func:`unshare` turns them back into tensors.
* By a broadcast (``cluster.weight_sync=broadcast``): learner rank 0 and the N engines open a
  process group of their own (:func:`open_group`: gloo on CPU, NCCL on GPUs, outside the
  learner's group) and rank 0 sends the weights in buckets of at most :data:`BUCKET_BYTES`
  (:func:`broadcast_state`), in the order of a :class:`Manifest` that every member holds, so
  only tensor bytes travel.

Only the gloo path was run here (CPU); the NCCL path is the same calls on CUDA tensors, written
but not run (no GPU).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["BUCKET_BYTES", "Manifest", "SyncGroup", "broadcast_state", "open_group", "shareable", "unshare"]

#: the most bytes one broadcast call carries (bounds the sender's and receivers' extra memory)
BUCKET_BYTES = 256 * 2**20


def shareable(state: Mapping[str, Tensor]) -> dict[str, tuple[Any, str, tuple[int, ...]]]:
    """A state dict as flat byte arrays (numpy), its dtypes and shapes: Ray's object store hands
    numpy arrays to every reader without a copy, where pickled tensors are copied per reader."""
    out = {}
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        out[key] = (t.reshape(-1).view(torch.uint8).numpy(), _name(t.dtype), tuple(t.shape))
    return out


def unshare(shared: Mapping[str, tuple[Any, str, tuple[int, ...]]]) -> dict[str, Tensor]:
    """:func:`shareable`'s state dict again, as tensors over the (read-only) shared arrays."""
    import warnings

    with warnings.catch_warnings():  # read-only: load_state_dict only reads them
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return {key: torch.from_numpy(data).view(getattr(torch, dtype)).reshape(shape)
                for key, (data, dtype, shape) in shared.items()}


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Manifest:
    """What a broadcast carries, in order: each tensor's name, shape and dtype (``float32``,
    ``bfloat16``, ...). Sender and receivers must hold the same manifest."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @classmethod
    def of(cls, state: Mapping[str, Tensor]) -> Manifest:
        return cls(tuple(state), tuple(tuple(t.shape) for t in state.values()),
                   tuple(_name(t.dtype) for t in state.values()))

    def nbytes(self, i: int) -> int:
        return math.prod(self.shapes[i]) * getattr(torch, self.dtypes[i]).itemsize

    @property
    def total_bytes(self) -> int:
        return sum(self.nbytes(i) for i in range(len(self.names)))

    def buckets(self, limit: int = BUCKET_BYTES) -> list[range]:
        """Consecutive tensor indices, at most ``limit`` bytes of tensors each (a larger tensor
        alone)."""
        out, start, size = [], 0, 0
        for i in range(len(self.names)):
            if i > start and size + self.nbytes(i) > limit:
                out.append(range(start, i))
                start, size = i, 0
            size += self.nbytes(i)
        if len(self.names) > start:
            out.append(range(start, len(self.names)))
        return out


def open_group(address: str, rank: int, world: int, *, nccl: bool, timeout_s: float = 300.0) -> SyncGroup:
    """Join the weight-sync group at ``address`` (``tcp://HOST:PORT``; rank 0 hosts the store):
    a process group of its own, apart from any default group this process is in. Every member
    must call it at once; it returns when all ``world`` have joined."""
    import torch.distributed as dist

    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(host, int(port), world, rank == 0, timeout=timeout, wait_for_workers=False)
    if nccl:  # not run here: no GPU
        group = dist.ProcessGroupNCCL(store, rank, world)
    else:
        group = dist.ProcessGroupGloo(store, rank, world, timeout)
    return SyncGroup(group, store)


@dataclass(frozen=True)
class SyncGroup:
    """A weight-sync process group and the store its members met at (kept alive with it)."""

    group: Any
    store: Any

    def broadcast(self, tensor: Tensor, root: int) -> Any:
        return self.group.broadcast(tensor, root)


def broadcast_state(group: SyncGroup, manifest: Manifest, state: Mapping[str, Tensor] | None = None, *,
                    device: torch.device | str = "cpu",
                    bucket_bytes: int = BUCKET_BYTES) -> dict[str, Tensor]:
    """Send (rank 0, ``state`` given) or receive (the others, ``state`` None) the tensors of
    ``manifest`` over ``group``, one bucket of about ``bucket_bytes`` per call (each tensor
    starts at a multiple of 16 bytes, so any dtype can view its bytes). The sender's
    tensors must have the manifest's shapes and dtypes. Returns the state dict (the receivers'
    tensors are views into the received buckets, on ``device``)."""
    out: dict[str, Tensor] = {}
    for bucket in manifest.buckets(bucket_bytes):
        offsets, size = [], 0
        for i in bucket:  # each tensor at an offset aligned for any dtype's view
            offsets.append(size)
            size += -(-manifest.nbytes(i) // _ALIGN) * _ALIGN
        flat = torch.empty(size, dtype=torch.uint8, device=device)
        if state is not None:
            for i, offset in zip(bucket, offsets, strict=True):
                t = state[manifest.names[i]]
                if tuple(t.shape) != manifest.shapes[i] or _name(t.dtype) != manifest.dtypes[i]:
                    raise ValueError(f"weight broadcast: {manifest.names[i]} is {tuple(t.shape)} "
                                     f"{_name(t.dtype)}, the manifest says {manifest.shapes[i]} "
                                     f"{manifest.dtypes[i]}")
                data = t.detach().contiguous().reshape(-1).view(torch.uint8)
                flat[offset:offset + manifest.nbytes(i)].copy_(data)
        group.broadcast(flat, 0).wait()
        for i, offset in zip(bucket, offsets, strict=True):
            out[manifest.names[i]] = (flat[offset:offset + manifest.nbytes(i)]
                                      .view(getattr(torch, manifest.dtypes[i])).reshape(manifest.shapes[i]))
    return out


#: byte alignment of each tensor inside a broadcast bucket
_ALIGN = 16
