"""Data-parallel learner ranks: the policy sharded with FSDP2 over a process group.

Every rank holds the whole step batch and computes the same scores, old-policy pass, advantages
and part state (so SPEAR's buffer, EPO's entropy history and the group statistics agree without
messages); the training passes split each mini-batch's micro-batches round-robin over the ranks.
A rank whose share is shorter runs a forward and backward of zero loss for each missing one, so
every rank joins every parameter all-gather and gradient reduce-scatter. Each rank's loss is
multiplied by the world size because FSDP2 averages the reduce-scattered gradients (gloo has no
pre-multiplied sum), so the accumulated gradient is the single-process one. Parameters outside
the sharded model (a value head) have their gradients averaged over the ranks the same way; the
metrics the micro-batches add are summed over the ranks before the parts read them.

Micro-batches, not rows, are what a rank takes, so statistics a part takes per micro-batch
(Clip-Cov's picks, STEER's max |Omega|) are those of one process with the same micro-batch size;
``tests/test_data_parallel.py`` checks that two ranks give the single-process update.

Use: ``torch.distributed.init_process_group(...)`` on every rank, then :func:`shard` the policy
and give it to :class:`~agentropy.algorithms.learner.Learner` as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from agentropy.algorithms.parts import Tally
from torch import Tensor, nn

__all__ = ["average_replicated_grads", "clip_grad_norm", "data_parallel_world", "full_model_state",
           "full_state", "full_tensor", "reduce_sums", "reduce_tally", "shard", "shard_optimizer_state",
           "share_of"]


def data_parallel_world(model: nn.Module) -> tuple[int, int]:
    """``(rank, world size)`` of a model sharded with FSDP2, else ``(0, 1)``."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule) and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(model: nn.Module, *, param_dtype: torch.dtype | None = None, offload: bool = False) -> nn.Module:
    """Shard a Hugging Face causal LM with FSDP2 over the default process group: each decoder
    layer, the backbone (embeddings and final norm) and the output head are units of their own,
    so the learner's chunked head (``logit_chunk_tokens``) can call the backbone and the head
    separately. Models that tie the head to the embeddings are refused (their one weight cannot
    live in two units).

    Args:
        model: the policy, on the rank's device.
        param_dtype: mixed precision: the units all-gather their parameters in this dtype (e.g.
            bfloat16, half the traffic of float32 masters) and reduce the gradients in float32;
            None gathers the masters' dtype.
        offload: keep the sharded parameters, their gradients and so the optimizer step in CPU
            memory (FSDP2's CPU offload); each unit is copied to the device for its forward and
            backward. On CPU ranks nothing moves.
    """
    from agentropy.algorithms.memory import split_lm
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    lm = split_lm(model)
    if lm is None:
        raise ValueError("shard(): only Hugging Face causal LMs of the Llama / Qwen2 / Mistral families")
    backbone, head = lm
    if getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        raise ValueError("shard(): a model whose output head is tied to its embeddings is not supported")
    kwargs: dict = {}
    if param_dtype is not None:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    if offload:
        kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=torch.cuda.is_available())
    for layer in getattr(backbone, "layers", ()):
        fully_shard(layer, **kwargs)
    fully_shard(backbone, **kwargs)
    fully_shard(head, **kwargs)
    fully_shard(model, **kwargs)
    return model


def _on_wire(t: Tensor) -> Tensor:
    """``t`` on the device the default group's collectives take: the current CUDA device under
    NCCL (which reduces CUDA tensors only), else where it is."""
    if dist.get_backend() == "nccl":
        return t.to(torch.device("cuda", torch.cuda.current_device()))
    return t


def share_of(n: int, rank: int, world: int) -> list[int | None]:
    """The micro-batch indices rank ``rank`` takes out of ``n``: ``rank, rank + world, ...``,
    padded with None (a zero-loss pass) to ``ceil(n / world)`` entries."""
    mine: list[int | None] = list(range(rank, n, world))
    return mine + [None] * (-(-n // world) - len(mine))


def average_replicated_grads(params: Iterable[Tensor]) -> None:
    """Average over the ranks the gradients of parameters that are not FSDP shards (DTensors),
    as FSDP2 does for its shards (each rank's loss carries the world size); a gradient no rank
    has stays None."""
    from torch.distributed.tensor import DTensor

    plain = [p for p in params if not isinstance(p, DTensor)]
    if not plain:
        return
    has = _on_wire(torch.tensor([float(p.grad is not None) for p in plain]))
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    for p, any_rank in zip(plain, has.tolist(), strict=True):
        if not any_rank:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(dist.get_world_size())


def clip_grad_norm(params: Sequence[Tensor], max_norm: float, *, ranks: bool = True) -> Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (L2) over sharded and replicated parameters: the
    squares of the local shards are summed over the ranks, the replicated ones counted once.
    Returns the total norm (a plain tensor on the gradients' device, the same on every rank).

    The squares are summed in float64, a chunk of :data:`NORM_CHUNK` elements at a time (so the
    float64 copy stays small): torch's float32 norm of a large gradient is off by a relative
    1e-6 to 1e-5 (seen here), which would show as a difference between one rank and several.
    One unsharded learner uses it too (``ranks=False``: no sum over ranks), so both clip alike.
    The sums stay on the (first) gradient's device and cross the ranks on the group's device."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    locals_ = [g.to_local() if isinstance(g, DTensor) else g for g in grads]
    device = locals_[0].device
    sharded = torch.zeros((), dtype=torch.float64, device=device)
    replicated = torch.zeros((), dtype=torch.float64, device=device)
    for g, local in zip(grads, locals_, strict=True):
        flat = local.reshape(-1)
        chunks = (flat[i:i + NORM_CHUNK].double().pow(2).sum() for i in range(0, flat.numel(), NORM_CHUNK))
        squares = sum(chunks, torch.zeros((), dtype=torch.float64, device=device))
        if isinstance(g, DTensor):
            sharded += squares.to(device)
        else:
            replicated += squares.to(device)
    if ranks:
        wire = _on_wire(sharded)
        dist.all_reduce(wire)
        sharded = wire.to(device)
    total = (sharded + replicated).sqrt().float()
    coef = float((max_norm / (total + 1e-6)).clamp(max=1.0))
    for g in grads:
        g.mul_(coef)
    return total


#: elements per float64 chunk in :func:`clip_grad_norm` (128 MiB of float64)
NORM_CHUNK = 2**24


def _union_keys(keys: Iterable[str]) -> list[str]:
    gathered: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, sorted(keys))
    return sorted({k for part in gathered for k in (part or [])})


def _summed(values: dict[str, Tensor | float], keys: list[str]) -> Tensor:
    out = _on_wire(torch.tensor([float(values.get(k, 0.0)) for k in keys], dtype=torch.float64))
    dist.all_reduce(out)
    return out.cpu()


def reduce_tally(local: Tally, into: Tally) -> None:
    """Add the ranks' ``local`` tallies, summed over the ranks, to ``into`` (the same on every
    rank afterwards)."""
    keys = _union_keys([*local.sums, *(f"#{k}" for k in local.counts)])
    mean_keys = [k for k in keys if not k.startswith("#")]
    count_keys = [k[1:] for k in keys if k.startswith("#")]
    sums, weights = _summed(local.sums, mean_keys), _summed(local.weights, mean_keys)
    for key, s, w in zip(mean_keys, sums.tolist(), weights.tolist(), strict=True):
        into.sums[key] = into.sums.get(key, 0.0) + s
        into.weights[key] = into.weights.get(key, 0.0) + w
    for key, c in zip(count_keys, _summed(local.counts, count_keys).tolist(), strict=True):
        into.count(key, c)


def reduce_sums(values: dict[str, Tensor | float]) -> dict[str, float]:
    """Per-key sums over the ranks (keys any rank has)."""
    keys = _union_keys(values)
    return dict(zip(keys, _summed(values, keys).tolist(), strict=True))


def full_tensor(t: Tensor) -> Tensor:
    """The whole of ``t`` if it is a DTensor (else ``t``), on the device of its shard; every rank
    must call it.

    FSDP2's layout (a 1-D mesh, ``Shard(0)``, rank i holding rows ``[i*c, (i+1)*c)`` with
    ``c = ceil(rows / world)``) is gathered by one blocking ``all_gather_single`` of the
    shards padded to ``c`` rows, the collective FSDP2 itself takes in every update; DTensor's own
    gather (asynchronous functional collectives) is left to other layouts. Gathering state after an
    update through DTensor once hung both gloo ranks (rarely, not reproduced on demand): this path
    keeps every collective of the ranks a blocking c10d call."""
    from torch.distributed.tensor import DTensor, Shard

    if not isinstance(t, DTensor):
        return t
    mesh = t.device_mesh
    if mesh.ndim != 1 or tuple(t.placements) != (Shard(0),) or t.dim() == 0:
        return t.full_tensor()
    group = mesh.get_group()
    world = dist.get_world_size(group)
    local = t.to_local()
    rows = -(-t.shape[0] // world)
    padded = local.new_zeros((rows, *t.shape[1:]))
    padded[:local.shape[0]].copy_(local)
    padded = _on_wire(padded)
    out = padded.new_empty((world * rows, *t.shape[1:]))
    # all_gather_into_tensor is the older torch's name of the same collective
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(out, padded, group=group)
    return out[:t.shape[0]].to(local.device)


def full_model_state(model: nn.Module) -> dict[str, Tensor]:
    """The sharded model's full (unsharded) state dict on CPU, as an unsharded model's
    ``state_dict()`` names it, on rank 0 (empty on the others); every rank must call it (one
    :func:`full_tensor` per sharded entry, in the state dict's order)."""
    rank = dist.get_rank()
    out = {}
    for name, value in model.state_dict().items():  # FSDP2: the shards, no communication
        full = full_tensor(value)
        if rank == 0:
            out[name] = full.detach().cpu()
    return out


def full_state(obj: object) -> object:
    """``obj`` (nested dicts, lists, tuples) with every DTensor gathered into a full CPU tensor, so
    a sharded learner's state has the single-process format; every rank must call it on the same
    structure (the gathers are collectives, taken in the structure's order)."""
    from torch.distributed.tensor import DTensor

    if isinstance(obj, DTensor):
        return full_tensor(obj).cpu()
    if isinstance(obj, dict):
        return {k: full_state(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(full_state(v) for v in obj)
    return obj


def _shard_like(full: Tensor, p: Any) -> Any:
    """``full`` laid out as parameter ``p`` (a DTensor) is: its shard of this rank, on the
    device where ``p``'s own shard lives (the CPU under offload)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    out = distribute_tensor(full.to(p.device), p.device_mesh, p.placements)
    local = p.to_local().device
    if out.to_local().device != local:
        out = DTensor.from_local(out.to_local().to(local), p.device_mesh, p.placements, run_check=False,
                                 shape=p.shape, stride=p.stride())
    return out


def shard_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """A single-process optimizer state dict (full tensors, parameters numbered in the order of
    the optimizer's groups) laid out for this rank: each state tensor shaped like a sharded
    parameter becomes that parameter's shard (a DTensor with its placements); every rank must
    call it."""
    from torch.distributed.tensor import DTensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {}
    for index, entry in state["state"].items():
        p = params[int(index)]
        if isinstance(p, DTensor):
            entry = {k: _shard_like(v, p) if isinstance(v, Tensor) and v.shape == p.shape else v
                     for k, v in entry.items()}
        out[index] = entry
    return {**state, "state": out}
