"""Typed configuration: every knob, its one default, and its check.

Hydra composes ``configs/train.yaml`` with the groups ``env/``, ``agent/``, ``algorithm/`` and
``experiment/``; the YAML files only select options and override values. The tree is typed by
the dataclasses below (registered with Hydra's ConfigStore), so a misspelt key or a value of the
wrong type fails at composition with Hydra's message naming the key, and ``__post_init__`` checks
names against the registries. :func:`agentropy.configs.compose.load_config` converts the result
into these dataclasses once; code below the entry point receives typed objects, never a
``DictConfig``.

Methods compose over a base recipe: ``algorithm=epo`` uses the GRPO recipe underneath, and
``algorithm=epo algorithm.base=gigpo`` puts EPO over GiGPO (the override is rewritten to Hydra's
``algorithm/base@algorithm=gigpo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentropy.configs.errors import ConfigError
from agentropy.configs.methods import (
    AepoAConfig,
    AepoTConfig,
    AresConfig,
    CanonConfig,
    HapoConfig,
    LpRegConfig,
    SirenConfig,
    SteerConfig,
)
from agentropy.configs.parts import check_name
from hydra.core.config_store import ConfigStore

__all__ = [
    "AgentConfig",
    "AlgorithmConfig",
    "ClusterConfig",
    "ConfigError",
    "EMPGConfig",
    "EPOConfig",
    "EnvConfig",
    "EvalConfig",
    "SFTConfig",
    "FilterConfig",
    "GiGPOConfig",
    "GroupConfig",
    "KLConfig",
    "LoRAConfig",
    "OpenAIConfig",
    "PPOConfig",
    "PolicyLossConfig",
    "ReplayConfig",
    "RewardConfig",
    "TinyModelConfig",
    "TrainConfig",
    "VLLMConfig",
]


def _choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")


def _positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class TinyModelConfig:
    """Size of the local model and its tokenizer (``agent.model=tiny``).

    The defaults are the quickstart model of docs/learning.md section 1 (2 layers, hidden 128, MLP 384, untied
    embeddings), which trains at several thousand tokens/s on 2 CPU cores.
    """

    vocab_size: int = 2048
    """target BPE vocabulary; the model's embedding rows are padded to a multiple of 64"""
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 4096
    seed: int = 0
    """seeds the weight initialisation (BPE training is deterministic by itself)"""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ConfigError(
                "agent.tiny: hidden_size must divide by num_heads and num_heads by num_kv_heads, "
                f"got {self.hidden_size}/{self.num_heads}/{self.num_kv_heads}"
            )
        if self.vocab_size < 300:
            raise ConfigError(f"agent.tiny.vocab_size: must be >= 300, got {self.vocab_size}")


@dataclass
class EnvConfig:
    """Which environment to train and evaluate on."""

    id: str = "agentropy/TWX-v0"
    """a registered Gymnasium id"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments for ``gymnasium.make`` (family-specific, e.g. ``game: coin``)"""
    max_turns: int = 50
    """turn limit of an episode (``max_episode_steps``)"""
    train_split: str = "train"
    eval_splits: list[str] = field(default_factory=lambda: ["dev"])
    pool: str = "serial"
    """EnvPool backend: ``serial``, ``subprocess`` or ``ray`` (Ray actors; needs ``cluster=ray``)"""
    num_workers: int = 2
    """worker processes (``subprocess``) or actors (``ray``) of the pool"""
    step_timeout_s: float = 120.0
    """a reset or step that takes longer marks its episode failed and replaces the worker"""

    def __post_init__(self) -> None:
        from gymnasium.envs.registration import registry

        from agentropy import envs  # noqa: F401  (registers the ids)

        if self.id not in registry:
            known = sorted(k for k in registry if k.startswith("agentropy/"))
            raise ConfigError(f"env.id: {self.id!r} is not registered; known: {', '.join(known)}")
        splits = getattr(envs.env_class(self.id), "splits", None) if self.id in envs.ENV_IDS else None
        for key, split in [("env.train_split", self.train_split),
                           *(("env.eval_splits", s) for s in self.eval_splits)]:
            if splits and split not in splits:
                raise ConfigError(f"{key}: {split!r} is not a split of {self.id}; known: {', '.join(splits)}")
        _positive("env.max_turns", self.max_turns)
        _choice("env.pool", self.pool, ("serial", "subprocess", "ray"))
        _positive("env.num_workers", self.num_workers)
        _positive("env.step_timeout_s", self.step_timeout_s)


@dataclass
class VLLMConfig:
    """Settings of the vLLM backend (``agent.backend=vllm``); docs/models.md section 2 has the facts."""

    in_process: bool = True
    """run the engine in this process (weights are pushed as tensors); False spawns vLLM's engine
    process and pushes weights through a saved checkpoint folder"""
    enforce_eager: bool = True
    """skip graph capture / torch.compile (startup 11-16 s instead of ~60 s on CPU)"""
    gpu_memory_utilization: float = 0.5
    """fraction of GPU memory vLLM may take (CUDA only)"""
    cpu_kv_cache_gib: int = 1
    """KV-cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``), unless that variable is already set"""
    max_model_len: int = 0
    """the engine's context length; 0 means ``max_prompt_tokens + max_new_tokens`` with room for
    a prompt that does not fit ``max_prompt_tokens`` even without history"""

    sleep_mode: bool = True
    """free the engine's GPU memory while the learner updates (``LLM.sleep``) and wake it for the
    weight push; CUDA only: elsewhere, or with a vLLM without the API, a logged notice and the
    engine keeps its memory"""
    sleep_level: int = 1
    """1: weights offloaded to CPU memory, KV cache dropped; 2: both dropped (less host memory;
    the weight push refills them)"""

    def __post_init__(self) -> None:
        _choice("agent.vllm.sleep_level", str(self.sleep_level), ("1", "2"))
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"agent.vllm.gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        _positive("agent.vllm.cpu_kv_cache_gib", self.cpu_kv_cache_gib)
        _positive("agent.vllm.max_model_len", self.max_model_len, allow_zero=True)


@dataclass
class OpenAIConfig:
    """An OpenAI-compatible server as the agent (``agent.backend=openai``): vLLM's ``vllm serve``,
    SGLang, or a hosted API."""

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    """environment variable holding the API key (unset: the placeholder ``EMPTY``, which local
    servers accept)"""
    model: str = ""
    """the served model name; "" means ``agent.model``"""
    api: str = "completions"
    """``completions``: prompts go as token ids and the sampled ids and log-probabilities come back
    (vLLM), so episodes can be trained on; ``chat``: messages in, text out, episodes recorded as
    not trainable (any chat API; needs ``prompt_mode=step``)"""
    max_concurrency: int = 8
    """requests in flight at once"""
    timeout_s: float = 120.0
    """per request"""
    max_retries: int = 3
    """retries of a request after a connection error, timeout, 429 or 5xx; then the episode fails"""
    backoff_s: float = 0.5
    """wait before the first retry; doubled for each further one"""

    def __post_init__(self) -> None:
        _choice("agent.openai.api", self.api, ("completions", "chat"))
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"agent.openai.base_url: must start with http:// or https://, got {self.base_url!r}")
        _positive("agent.openai.max_concurrency", self.max_concurrency)
        _positive("agent.openai.timeout_s", self.timeout_s)
        _positive("agent.openai.max_retries", self.max_retries, allow_zero=True)
        _positive("agent.openai.backoff_s", self.backoff_s, allow_zero=True)


@dataclass
class LoRAConfig:
    """Low-rank adapters (``peft``) trained instead of the full model; off while ``rank`` is 0."""

    rank: int = 0
    """adapter rank r; 0 trains the full model"""
    alpha: float = 16.0
    """the update is scaled by alpha / r"""
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """names of the linear layers that get adapters (Qwen2/Llama names)"""

    @property
    def enabled(self) -> bool:
        return self.rank > 0

    def __post_init__(self) -> None:
        _positive("agent.lora.rank", self.rank, allow_zero=True)
        _positive("agent.lora.alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"agent.lora.dropout: must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("agent.lora.target_modules: name at least one module")


@dataclass
class AgentConfig:
    """The policy: which model, which backend, how it is prompted, sampled and parsed."""

    model: str = "tiny"
    """``tiny`` builds the local model into the run folder; otherwise a folder or hub name"""
    backend: str = "hf"
    """``hf`` (transformers generate), ``vllm``, ``openai`` (an OpenAI-compatible server, see
    ``openai``), or ``scripted`` (``random`` / ``expert`` policies, see ``scripted_policy``)"""
    dtype: str = "float32"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    prompt_mode: str = "step"
    """``step``: a fresh prompt per turn (task, last ``history_length`` observation/action pairs,
    current observation, admissible actions), as in verl-agent; ``conversation``: the episode as
    one growing chat whose earlier turns are the exact token ids generated"""
    history_length: int = 2
    """(observation, action) pairs of history shown in each ``step`` prompt; 0 allowed"""
    history_observation: str = "full"
    """how history observations are shown: ``full`` or ``first_sentence`` (docs/learning.md section 2: cut a
    TWX prompt from 363 to 196 tokens and halved compute)"""
    max_admissible_actions: int = 0
    """show at most this many admissible actions (the rest are counted); 0 shows all"""
    max_prompt_tokens: int = 1024
    """prompts longer than this lose their oldest history turns (never part of an observation)"""
    max_new_tokens: int = 64
    temperature: float = 1.0
    """sampling temperature; 0 is greedy decoding"""
    top_p: float = 1.0
    require_think: bool = True
    """a completion without one ``<think>...</think>`` before its action is an invalid turn"""
    invalid_action: str = "tail"
    """what a turn with a malformed completion sends to the env: ``tail`` (the action it could
    still extract, else the last ``invalid_tail_chars`` characters, as verl-agent does) or
    ``empty`` (nothing: the env answers with its invalid-action feedback)"""
    invalid_tail_chars: int = 30
    generation_batch_size: int = 64
    """prompts per ``generate`` call of the HF backend (memory bound)"""
    record_tokens: bool = True
    """store each completion's tokens (as text pieces) and token entropies in the episode log"""
    scripted_policy: str = "expert"
    """policy of the ``scripted`` backend: ``random`` admissible action or ``expert`` action"""
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    def __post_init__(self) -> None:
        _registered("model backend", "agent.backend", self.backend)
        if self.backend == "openai" and self.openai.api == "chat" and self.prompt_mode != "step":
            raise ConfigError("agent.openai.api=chat sends chat messages: it needs agent.prompt_mode=step")
        _choice("agent.dtype", self.dtype, ("float32", "bfloat16", "float16"))
        _choice("agent.prompt_mode", self.prompt_mode, ("step", "conversation"))
        _choice("agent.history_observation", self.history_observation, ("full", "first_sentence"))
        _choice("agent.invalid_action", self.invalid_action, ("tail", "empty"))
        _choice("agent.scripted_policy", self.scripted_policy, ("random", "expert"))
        _positive("agent.history_length", self.history_length, allow_zero=True)
        _positive("agent.max_admissible_actions", self.max_admissible_actions, allow_zero=True)
        _positive("agent.max_prompt_tokens", self.max_prompt_tokens)
        _positive("agent.max_new_tokens", self.max_new_tokens)
        _positive("agent.temperature", self.temperature, allow_zero=True)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"agent.top_p: must be in (0, 1], got {self.top_p}")
        _positive("agent.invalid_tail_chars", self.invalid_tail_chars)
        _positive("agent.generation_batch_size", self.generation_batch_size)


def _registered(kind: str, key: str, value: str) -> None:
    """Raise ConfigError naming ``key`` unless ``value`` is a declared part of ``kind``."""
    try:
        check_name(kind, key, value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass
class RewardConfig:
    """The score the advantages see (docs/algorithms.md sections 0.5 and 7.2).

    A row's score is outcome + tool-call bonus - invalid-action penalty (of that row); GiGPO's
    step rewards are the per-step outcome rewards, discounted, minus the row's penalty.
    """

    outcome: str = "success"
    """``success``: ``scale`` x won, paid at the last step (verl-agent's 10 x won for ALFWorld,
    WebShop, ScienceWorld); ``return``: ``scale`` x the env's per-step rewards (the episode
    return at the episode level)"""
    scale: float = 10.0
    """verl-agent: 10 x won"""
    invalid_action_penalty: float = 0.1
    """subtracted from the score of each row whose action was invalid (verl-agent 0.1)"""
    penalize: str = "format"
    """which invalid turns pay the penalty: ``format`` (the published rule: verl-agent penalises
    completions its action parser rejects, not commands the env then refuses) or ``any`` (also
    commands outside the admissible set, which this project's envs report as invalid too)"""
    tool_call_coef: float = 0.0
    """SPEAR's intrinsic reward min(cap, coef x actions in the episode); 0 turns it off"""
    tool_call_cap: float = 1.0
    tool_call_schedule: str = "cosine"
    """``cosine``: weight (1 + cos(pi t / T)) / 2 falling to 0 at T; ``constant``: weight 1"""
    tool_call_steps: int = 200
    """T of the falling curriculum, in global steps (SPEAR scripts: 200)"""

    def __post_init__(self) -> None:
        _choice("algorithm.reward.outcome", self.outcome, ("success", "return"))
        _choice("algorithm.reward.penalize", self.penalize, ("format", "any"))
        _choice("algorithm.reward.tool_call_schedule", self.tool_call_schedule, ("cosine", "constant"))
        _positive("algorithm.reward.invalid_action_penalty", self.invalid_action_penalty, allow_zero=True)
        _positive("algorithm.reward.tool_call_coef", self.tool_call_coef, allow_zero=True)
        _positive("algorithm.reward.tool_call_steps", self.tool_call_steps, allow_zero=True)


@dataclass
class GroupConfig:
    """Group statistics of GRPO, and of GiGPO's episode and step levels (docs/algorithms.md sections 2
    and 3)."""

    norm_by_std: bool = True
    """divide by the group std (``mean_std_norm``); False is Dr.GRPO / Dr.BoT / ``mean_norm``.
    GRPO's advantage and GiGPO's episode level; GiGPO's step level has its own
    ``gigpo.step_norm_by_std`` (SPEAR turns this off for GRPO but ran GiGPO's step level
    with the std)"""
    over_rows: bool = True
    """statistics over all rows of a group (verl-agent's ``compute_mean_std_cross_all_data``
    default: a 50-step trajectory counts 50 times); False: one score per trajectory (the
    paper's formula; a trajectory's score is the mean of its rows' scores)"""
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _positive("algorithm.group.eps", self.eps, allow_zero=True)


@dataclass
class GiGPOConfig:
    """GiGPO's step level (arXiv 2505.10978; docs/algorithms.md section 3)."""

    gamma: float = 0.95
    """discount of the step returns"""
    step_weight: float = 1.0
    """omega in A = A_episode + omega A_step"""
    step_norm_by_std: bool = True
    """divide the step advantage by its anchor group's std (``mean_std_norm``); False:
    ``mean_norm`` (the WebShop recipes)"""

    def __post_init__(self) -> None:
        if not 0 <= self.gamma <= 1:
            raise ConfigError(f"algorithm.gigpo.gamma: must be in [0, 1], got {self.gamma}")


@dataclass
class PPOConfig:
    """PPO's critic and GAE (docs/algorithms.md section 1).

    Without a separate critic (``value_model``) the learner puts a linear value head on the
    policy's own last hidden state (one forward pass on CPU); its loss is added with
    ``value_coef`` and the head trains at ``critic_lr``.
    """

    gamma: float = 1.0
    lam: float = 1.0
    whiten: bool = True
    """whiten the advantages over the batch (masked mean / std)"""
    value_clip: float = 0.5
    """verl ``cliprange_value``"""
    value_coef: float = 0.5
    """weight of the value loss when the value head shares the policy's backbone"""
    critic_lr: float = 1e-5

    def __post_init__(self) -> None:
        for key in ("gamma", "lam"):
            value = getattr(self, key)
            if not 0 <= value <= 1:
                raise ConfigError(f"algorithm.ppo.{key}: must be in [0, 1], got {value}")
        _positive("algorithm.ppo.value_clip", self.value_clip)
        _positive("algorithm.ppo.value_coef", self.value_coef, allow_zero=True)
        _positive("algorithm.ppo.critic_lr", self.critic_lr)


@dataclass
class PolicyLossConfig:
    """The per-token policy loss (a name in ``agentropy.algorithms.registry.POLICY_LOSSES``)."""

    name: str = "ppo_clip"
    """``ppo_clip``, ``clip_cov`` or ``kl_cov``"""
    clip_low: float = 0.2
    clip_high: float = 0.2
    """clip-higher (DAPO, Dr.BoT) sets 0.28"""
    dual_clip_c: float | None = 3.0
    """dual clip for A < 0 (verl ``clip_ratio_c``); null turns it off; not used by the Cov losses"""
    clip_cov_ratio: float = 2e-4
    """Clip-Cov: fraction of valid tokens detached (arXiv 2505.22617; verl yaml default)"""
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-4
    """KL-Cov: fraction (not percent) of tokens that get the KL term"""
    kl_cov_coef: float = 1.0
    """KL-Cov's beta (verl ``ppo_kl_coef``)"""

    def check(self, key: str) -> None:
        _registered("policy loss", f"{key}.name", self.name)
        _positive(f"{key}.clip_low", self.clip_low, allow_zero=True)
        _positive(f"{key}.clip_high", self.clip_high, allow_zero=True)
        if self.dual_clip_c is not None and self.dual_clip_c <= 1:
            raise ConfigError(f"{key}.dual_clip_c: must be > 1 or null, got {self.dual_clip_c}")
        for name in ("clip_cov_ratio", "kl_cov_ratio"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"{key}.{name}: must be in (0, 1], got {value}")
        if self.clip_cov_lb >= self.clip_cov_ub:
            raise ConfigError(f"{key}.clip_cov_lb: must be below clip_cov_ub, got "
                              f"{self.clip_cov_lb} >= {self.clip_cov_ub}")


@dataclass
class KLConfig:
    """KL to a frozen reference, k3 in the loss (verl-agent ``use_kl_loss``, ``low_var_kl``)."""

    coef: float = 0.01
    """0 turns the KL term off (and no reference forward pass is made)"""
    target: float = 0.0
    """> 0: adaptive coefficient that moves towards this KL per token (Ziegler et al. 2019)"""
    horizon: int = 10000

    def __post_init__(self) -> None:
        _positive("algorithm.kl.coef", self.coef, allow_zero=True)
        _positive("algorithm.kl.target", self.target, allow_zero=True)
        _positive("algorithm.kl.horizon", self.horizon)


@dataclass
class EPOConfig:
    """EPO's entropy smoothing (arXiv 2509.22576, paper Tab. 2/3; docs/algorithms.md section 5).

    The loss is L - lambda [L_H - beta_k L_smooth] with lambda = ``algorithm.entropy_coef``,
    L_H the nested-average token entropy and L_smooth the nested average of ``alpha`` x the
    hinge against the cumulative mean of past batch entropies.
    """

    enabled: bool = False
    alpha: float = 0.1
    """weight of the hinge ("lambda_k" in the paper's table): ALFWorld 0.1, ScienceWorld 0.05"""
    kappa_l: float = 0.0
    kappa_r: float = 2.0
    gamma: float = 3.0
    """beta_k = 1 + exp(-gamma k / floor(K / 2))"""

    def __post_init__(self) -> None:
        _positive("algorithm.epo.alpha", self.alpha, allow_zero=True)
        _positive("algorithm.epo.kappa_l", self.kappa_l, allow_zero=True)
        if self.kappa_r < self.kappa_l:
            raise ConfigError(f"algorithm.epo.kappa_r: must be >= kappa_l, got {self.kappa_r}")


@dataclass
class EMPGConfig:
    """EMPG (arXiv 2509.09265; docs/algorithms.md section 6): used when ``algorithm.advantage`` is
    ``empg``."""

    over: str = "grpo"
    """the trajectory advantage EMPG modulates: ``grpo`` or ``gigpo`` (each base recipe sets it)"""
    k: float = 1.0
    k_next: float = 1.0
    zeta: float = 0.1
    """project-page snippet default; ARLArena uses 0.05"""
    eps: float = 1e-8


@dataclass
class FilterConfig:
    """Dr.BoT's response filters (zero the loss of a row) and group filter (drop groups).

    docs/algorithms.md section 7.1 and DAPO's dynamic sampling. Rows keep their place in the advantage's
    group statistics; only their loss is masked.
    """

    overlong: bool = False
    """generation stopped at the token limit"""
    incomplete: bool = False
    """no <action>...</action> after the last </think> (needs the learner's tokenizer)"""
    repetitive: bool = False
    """some ``ngram``-token n-gram occurs ``ngram_repeats`` or more times"""
    unreadable: bool = False
    """the decoded completion contains U+FFFD (needs the learner's tokenizer)"""
    ngram: int = 20
    ngram_repeats: int = 10
    group_keep_ratio: float = 1.0
    """keep this fraction of groups, those with the highest std of trajectory scores (Dr.BoT 0.75)"""
    drop_constant_groups: bool = False
    """drop groups whose trajectories all scored the same (DAPO's dynamic sampling, without
    the resampling)"""

    def __post_init__(self) -> None:
        if not 0 < self.group_keep_ratio <= 1:
            raise ConfigError(
                f"algorithm.filters.group_keep_ratio: must be in (0, 1], got {self.group_keep_ratio}")
        _positive("algorithm.filters.ngram", self.ngram)
        _positive("algorithm.filters.ngram_repeats", self.ngram_repeats)


def _replay_loss() -> PolicyLossConfig:
    # SPEAR scripts: clip_cov with r = 0.02, lb = 2, ub = 60 (the README shows lb 1, ub 40),
    # clip 0.2 / 0.28; no dual clip (the Cov losses never use it).
    return PolicyLossConfig(name="clip_cov", clip_high=0.28, dual_clip_c=None,
                            clip_cov_ratio=0.02, clip_cov_lb=2.0, clip_cov_ub=60.0)


@dataclass
class ReplayConfig:
    """SPEAR's self-imitation replay (arXiv 2509.22601; docs/algorithms.md section 7.3)."""

    enabled: bool = False
    capacity: int = 8192
    """rows preallocated on the training device; when full the oldest rows go first (SPEAR's
    list is unbounded; this bound is ours)"""
    batch_rows: int = 2048
    """``trajectory_buffer_size``: the most rows one replay uses"""
    trigger: float = 1.5
    """replay when more than trigger x batch_rows stored rows beat the median group mean"""
    tolerate_steps: int = 5
    """rows older than this many global steps are dropped (SPEAR scripts: 5)"""
    baseline_size: int = 10240
    """group entries kept in the baseline buffer"""
    recalibrate: bool = True
    """A~ = score - median of historical group means (SPEAR's weight -1); False: stored
    advantage x ``advantage_scale``"""
    advantage_scale: float = 1.0
    loss_coef: float = 1.0
    """replay_loss_coef (scripts 1; yaml default 0.001)"""
    loss_steps: int = 200
    """T of the rising curriculum gamma_t = coef (1 - cos(pi t / T)) / 2"""
    policy_loss: PolicyLossConfig = field(default_factory=_replay_loss)

    def __post_init__(self) -> None:
        _positive("algorithm.replay.capacity", self.capacity)
        _positive("algorithm.replay.batch_rows", self.batch_rows)
        _positive("algorithm.replay.trigger", self.trigger, allow_zero=True)
        _positive("algorithm.replay.tolerate_steps", self.tolerate_steps, allow_zero=True)
        _positive("algorithm.replay.baseline_size", self.baseline_size)
        _positive("algorithm.replay.loss_coef", self.loss_coef, allow_zero=True)
        if not 0 < self.advantage_scale <= 1:
            raise ConfigError(
                f"algorithm.replay.advantage_scale: must be in (0, 1], got {self.advantage_scale}")
        if self.enabled and self.capacity < self.trigger * self.batch_rows:
            raise ConfigError(
                f"algorithm.replay.capacity: {self.capacity} rows can never reach the trigger "
                f"{self.trigger} x batch_rows = {self.trigger * self.batch_rows:g}")
        self.policy_loss.check("algorithm.replay.policy_loss")


@dataclass
class AlgorithmConfig:
    """The learner, as a configuration of registered parts (docs/algorithms.md).

    A recipe is ``configs/algorithm/base/<recipe>.yaml``; EPO, EMPG and SPEAR are composed over
    a base (``algorithm=epo algorithm.base=gigpo``). Aggregation by recipe: GRPO, GiGPO, PPO and
    DAPO use ``token-mean`` (their published defaults), Dr.BoT ``seq-mean-token-sum-norm``,
    EPO ``traj-mean-turn-mean-token-mean`` (the paper's nested average). docs/learning.md section 4.1 saw a
    batch-wide token-mean collapse a tiny policy on multi-turn 0/1 rewards where per-trajectory
    normalisation did not: prefer the nested mode for small-model runs.
    """

    name: str = "grpo"
    """the recipe's name, for logs"""
    base: str = "grpo"
    """the base recipe a method (EPO, EMPG, SPEAR) composes over"""
    advantage: str = "grpo"
    """advantage estimator: ``gae``, ``grpo``, ``gigpo``, ``empg``, ``canon`` or ``hapo``"""
    policy_loss: PolicyLossConfig = field(default_factory=PolicyLossConfig)
    aggregation: str = "token-mean"
    """loss aggregation mode (a name in ``agentropy.algorithms.registry.AGGREGATIONS``)"""
    entropy_coef: float = 0.001
    """entropy bonus (verl-agent's yaml default, on in every baseline); EPO's lambda"""
    kl: KLConfig = field(default_factory=KLConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    gigpo: GiGPOConfig = field(default_factory=GiGPOConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    epo: EPOConfig = field(default_factory=EPOConfig)
    empg: EMPGConfig = field(default_factory=EMPGConfig)
    siren: SirenConfig = field(default_factory=SirenConfig)
    """SIREN's selective entropy term (``algorithm=siren``; docs/algorithms.md section 14)"""
    steer: SteerConfig = field(default_factory=SteerConfig)
    """STEER's per-token weights (``algorithm=steer``)"""
    lp_reg: LpRegConfig = field(default_factory=LpRegConfig)
    """Lp-Reg's low-probability regulariser (``algorithm=lp_reg``)"""
    canon: CanonConfig = field(default_factory=CanonConfig)
    """CANON's conditional advantage (``algorithm=canon``, i.e. ``advantage: canon``)"""
    hapo: HapoConfig = field(default_factory=HapoConfig)
    """HAPO's advantage and adaptive clipping (``algorithm=hapo``)"""
    aepo_t: AepoTConfig = field(default_factory=AepoTConfig)
    """AEPO-T's tempered REINFORCE episodes (``algorithm=aepo_t``)"""
    aepo_a: AepoAConfig = field(default_factory=AepoAConfig)
    """AEPO-A's entropy-balanced optimisation (``algorithm=aepo_a``)"""
    ares: AresConfig = field(default_factory=AresConfig)
    """ARES's entropy shaping and per-difficulty KL weights (``algorithm=ares``)"""
    filters: FilterConfig = field(default_factory=FilterConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    lr: float = 1e-6
    weight_decay: float = 0.01
    """AdamW weight decay (verl actor default)"""
    lr_schedule: str = "constant"
    """``constant`` or ``cosine`` (EPO: cosine, warmup 0.1, min ratio 0.2)"""
    warmup_ratio: float = 0.0
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    ppo_epochs: int = 1
    mini_batch_size: int = 256
    """rows per optimizer step (verl-agent ALFWorld 256); rows are split without regard to
    their trajectories, as in verl-agent, and aggregation is per mini-batch"""
    micro_batch_size: int = 32
    """rows per forward pass; gradients are accumulated over a mini-batch"""
    max_tokens_per_micro_batch: int = 0
    """token budget of a forward pass (rows x longest row, after trimming padding); micro-batches
    take rows while both limits hold. 0: rows only (``micro_batch_size``)"""
    activation_checkpointing: bool = False
    """recompute decoder-layer activations in the backward pass (on in the GPU recipes)"""
    logit_chunk_tokens: int = 1024
    """apply the LM head at completion positions only, this many at a time, recomputing each
    chunk's float32 log-softmax in the backward pass (no (rows x seq x vocab) logits); 0 computes
    full logits (plain path; also used for models :func:`agentropy.algorithms.memory.split_lm`
    does not know)"""
    master_weights: str = "float32"
    """``float32``: trainable weights and AdamW state in float32, the forward and backward under
    autocast in ``agent.dtype`` (bf16 / fp16) where the device supports it, weights pushed to the
    rollout engine cast to ``agent.dtype``. ``compute``: pure ``agent.dtype`` weights, stepped by
    AdamW with float32 moments and stochastic rounding of the weights
    (:class:`agentropy.algorithms.memory.StochasticRoundingAdamW`); half the weight memory, noisier"""
    ref_device: str = "same"
    """where the KL reference lives (made only when ``kl.coef`` > 0, frozen, in ``agent.dtype``):
    ``same`` as the policy, or ``cpu`` (slower reference pass, no GPU memory)"""
    shuffle: bool = True
    """shuffle rows before splitting them into mini-batches"""
    old_logprobs: str = "recompute"
    """behaviour log-probs for the ratio: ``recompute`` with the model before the update
    (verl), or ``rollout`` (the sampler's, no extra forward pass)"""
    seed: int = 0
    """seeds the learner's own random choices (shuffling, Clip-Cov picks, replay subsampling)"""

    def __post_init__(self) -> None:
        _registered("advantage estimator", "algorithm.advantage", self.advantage)
        _registered("aggregation mode", "algorithm.aggregation", self.aggregation)
        self.policy_loss.check("algorithm.policy_loss")
        if self.advantage == "empg" and self.empg.over not in ("grpo", "gigpo"):
            raise ConfigError(
                f"algorithm.empg.over: EMPG modulates a trajectory advantage (grpo or gigpo), "
                f"got {self.empg.over!r} (base recipe {self.base!r})")
        if self.siren.enabled and self.siren.unit != "row":
            raise ConfigError("algorithm.siren.unit: only 'row' is wired into the learner (a trajectory's "
                              "rows can fall into different micro-batches)")
        if self.steer.enabled and self.steer.scope != "micro":
            raise ConfigError("algorithm.steer.scope: only 'micro' (the released code's) is wired into the "
                              "learner; 'mini' and 'batch' need a pre-pass of the current policy")
        for key in ("hapo", "aepo_a"):
            if getattr(self, key).enabled and self.policy_loss.name != "ppo_clip":
                raise ConfigError(f"algorithm.{key}.enabled: the part replaces a ppo_clip policy loss, got "
                                  f"algorithm.policy_loss.name={self.policy_loss.name!r}")
        if self.aepo_a.enabled and self.aepo_a.branching and self.aepo_a.dynamic_global_samples:
            raise ConfigError("algorithm.aepo_a.dynamic_global_samples: entropy pre-monitoring needs a probe "
                              "rollout per task and is not implemented; the branching rollout starts "
                              "algorithm.aepo_a.global_samples episodes per group from the reset")
        _registered("lr schedule", "algorithm.lr_schedule", self.lr_schedule)
        _choice("algorithm.old_logprobs", self.old_logprobs, ("recompute", "rollout"))
        _positive("algorithm.lr", self.lr)
        _positive("algorithm.weight_decay", self.weight_decay, allow_zero=True)
        _positive("algorithm.entropy_coef", self.entropy_coef, allow_zero=True)
        _positive("algorithm.grad_clip", self.grad_clip)
        _positive("algorithm.ppo_epochs", self.ppo_epochs)
        _positive("algorithm.mini_batch_size", self.mini_batch_size)
        _positive("algorithm.micro_batch_size", self.micro_batch_size)
        _positive("algorithm.max_tokens_per_micro_batch", self.max_tokens_per_micro_batch, allow_zero=True)
        _positive("algorithm.logit_chunk_tokens", self.logit_chunk_tokens, allow_zero=True)
        _choice("algorithm.master_weights", self.master_weights, ("float32", "compute"))
        _choice("algorithm.ref_device", self.ref_device, ("same", "cpu"))
        for key in ("warmup_ratio", "min_lr_ratio"):
            value = getattr(self, key)
            if not 0 <= value <= 1:
                raise ConfigError(f"algorithm.{key}: must be in [0, 1], got {value}")


@dataclass
class SFTConfig:
    """The supervised warm start on expert trajectories the environments produce.

    The expert plays ``episodes`` episodes of the training split through the same prompt
    templates as the policy; its completions (``<think></think><action>CMD</action>``) are the
    targets. docs/learning.md section 3: on TWX coin, 40-160 steps of batch 16 at lr 2e-3 reached 0.5-0.6
    sampled success on held-out games.
    """

    enabled: bool = True
    episodes: int = 500
    """expert episodes to collect (only won episodes are kept)"""
    steps: int = 150
    batch_size: int = 16
    """rows (turns) per optimizer step"""
    lr: float = 2.0e-3
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1
    """cosine decay to this fraction of ``lr``"""
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    dataset: str = ""
    """train on this dataset (``agentropy export`` output or parquet with prompt/completion columns)
    instead of scripted-expert episodes; "" plays the expert"""
    detour: float = 0.0
    """a suboptimal demonstrator: the expert's chance per turn of a random admissible command
    instead of its own (its won episodes are still kept, detours included); 0 is the expert"""

    def __post_init__(self) -> None:
        _positive("sft.episodes", self.episodes)
        _positive("sft.steps", self.steps, allow_zero=True)
        _positive("sft.batch_size", self.batch_size)
        _positive("sft.lr", self.lr)
        _positive("sft.weight_decay", self.weight_decay, allow_zero=True)
        _positive("sft.grad_clip", self.grad_clip)
        for key in ("warmup_ratio", "min_lr_ratio", "detour"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"sft.{key}: must be in [0, 1], got {getattr(self, key)}")


@dataclass
class EvalConfig:
    """Evaluation on held-out tasks: fixed tasks, fixed episode counts, never tuned on."""

    every: int = 5
    """RL iterations between evaluations (the start and the end are always evaluated); 0 means
    only the start and the end"""
    episodes: int = 100
    """episodes per split and decoding mode: tasks 0 .. episodes-1 of the split, one each"""
    temperature: float = 1.0
    """sampled evaluation's temperature (verl-agent validates at 0.4)"""
    greedy: bool = True
    """also evaluate with greedy decoding"""
    at_start: bool = True
    """evaluate the starting policy (after SFT) too; off when its numbers are known, e.g. many
    runs from one SFT model (bench/learning.py)"""
    seed: int = 1000
    """reset seeds of evaluation episodes are seed + task index (verl-agent: seed + 1000)"""
    pool_size: int = 0
    """environments per evaluation pool (0: as many as the training pool)"""

    def __post_init__(self) -> None:
        _positive("eval.every", self.every, allow_zero=True)
        _positive("eval.episodes", self.episodes, allow_zero=True)
        _positive("eval.temperature", self.temperature, allow_zero=True)
        _positive("eval.pool_size", self.pool_size, allow_zero=True)


@dataclass
class ClusterConfig:
    """Where a run's parts run (``cluster=local`` or ``cluster=ray``).

    ``local``: this process, with the env pool's subprocess workers; Ray is never imported.
    ``ray``: the run connects to Ray (or starts a local one) and the env workers are Ray actors
    (``env.pool=ray``, set by ``configs/cluster/ray.yaml``); generation stays in the driver
    process unless ``rollout_engines`` > 0 (that many engine actors:
    :mod:`agentropy.agents.backends.ray_engines`), and so does the learner unless
    ``learner_ranks`` > 1, which makes it that many data-parallel Ray actors
    (:mod:`agentropy.algorithms.ray_learner`).
    """

    backend: str = "local"
    """``local`` or ``ray``"""
    address: str = ""
    """Ray's address: "" starts a local Ray inside this run (stopped at its end); ``auto`` joins
    the cluster started on this machine with ``ray start``; or ``HOST:PORT`` of a head node"""
    num_cpus: int = 0
    """CPUs a local Ray offers (0: every core of this machine); ignored when joining a cluster"""
    object_store_mb: int = 256
    """object store of a local Ray, in MiB; ignored when joining a cluster"""
    learner_ranks: int = 1
    """data-parallel learner ranks: 1 trains in the driver process; K > 1 (``backend=ray`` only)
    runs K Ray actors that shard the policy with FSDP2 and send the driver the full weights after
    each update"""
    learner_cpus_per_rank: float = 1.0
    """CPUs each learner rank reserves (its bundle of the placement group); with learner_ranks > 1"""
    learner_gpus_per_rank: float = 0.0
    """GPUs each learner rank reserves; a rank that gets one trains on it over NCCL (not run
    here: only CPU ranks over gloo were tested)"""
    learner_mixed_precision: bool = False
    """FSDP2 mixed precision for the ranks: all-gather the parameters in ``agent.dtype`` (half the
    traffic of float32 masters when it is bfloat16) and reduce the gradients in float32; off,
    the masters are gathered and the forward pass runs under autocast"""
    learner_offload: bool = False
    """FSDP2 CPU offload for the ranks: the sharded parameters, gradients and the optimizer step
    live in CPU memory, each unit copied to the GPU for its passes (less GPU memory, slower);
    on CPU ranks nothing moves"""
    collective_timeout_s: float = 600.0
    """the longest one collective of the learner ranks may wait for the others (their process
    group's timeout): a rank that waits longer fails the call, and so the run, with the
    collective's error instead of hanging"""
    learner_placement: str = "PACK"
    """Ray placement-group strategy of the learner ranks' bundles: ``PACK``, ``SPREAD``,
    ``STRICT_PACK`` or ``STRICT_SPREAD``"""
    rollout_engines: int = 0
    """generation engines as Ray actors (``backend=ray`` only), each an ``agent.backend`` engine;
    0 generates in the driver process"""
    engine_cpus: float = 1.0
    """CPUs each rollout engine reserves (its torch threads on CPU)"""
    engine_gpus: int = 0
    """GPUs each rollout engine reserves; a vLLM engine with more than one is tensor-parallel over
    them (not run here: only CPU engines were tested)"""
    colocate: bool = False
    """engine i runs in learner rank i's placement-group bundle and shares its GPUs (each takes
    half of ``learner_gpus_per_rank``; a vLLM engine sleeps during the update): needs
    learner_ranks > 1 and at most that many engines; the bundle adds ``engine_cpus``"""
    weight_sync: str = "object_store"
    """how each update reaches the rollout engines: ``object_store`` (the driver puts the weights in
    Ray's object store once, every engine loads them; a lost engine is replaced) or ``broadcast``
    (learner rank 0 broadcasts them to the engines over a process group of their own, gloo on CPU,
    NCCL on GPUs; needs learner_ranks > 1; a lost engine ends the run)"""

    def __post_init__(self) -> None:
        _choice("cluster.backend", self.backend, ("local", "ray"))
        _positive("cluster.num_cpus", self.num_cpus, allow_zero=True)
        _positive("cluster.object_store_mb", self.object_store_mb)
        _positive("cluster.learner_ranks", self.learner_ranks)
        _positive("cluster.learner_cpus_per_rank", self.learner_cpus_per_rank)
        _positive("cluster.learner_gpus_per_rank", self.learner_gpus_per_rank, allow_zero=True)
        _positive("cluster.collective_timeout_s", self.collective_timeout_s)
        _choice("cluster.learner_placement", self.learner_placement,
                ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"))
        _positive("cluster.rollout_engines", self.rollout_engines, allow_zero=True)
        _positive("cluster.engine_cpus", self.engine_cpus)
        _positive("cluster.engine_gpus", self.engine_gpus, allow_zero=True)
        if self.learner_ranks > 1 and self.backend != "ray":
            raise ConfigError(f"cluster.learner_ranks={self.learner_ranks} needs cluster=ray "
                              "(the ranks are Ray actors)")
        _choice("cluster.weight_sync", self.weight_sync, ("object_store", "broadcast"))
        if self.weight_sync == "broadcast" and (self.learner_ranks < 2 or not self.rollout_engines):
            raise ConfigError("cluster.weight_sync=broadcast sends from learner rank 0 to the rollout "
                              "engines: it needs cluster.learner_ranks > 1 and cluster.rollout_engines > 0")
        if self.colocate:
            if self.learner_ranks < 2 or not 0 < self.rollout_engines <= self.learner_ranks:
                raise ConfigError(f"cluster.colocate puts engine i in learner rank i's bundle: it needs "
                                  f"cluster.learner_ranks > 1 and 1 to learner_ranks engines (got "
                                  f"{self.learner_ranks} ranks, {self.rollout_engines} engines)")
            if self.engine_gpus:
                raise ConfigError("cluster.colocate: an engine shares its rank's GPUs "
                                  "(learner_gpus_per_rank); leave cluster.engine_gpus at 0")
            if self.weight_sync == "broadcast":
                raise ConfigError("cluster.colocate with cluster.weight_sync=broadcast would put two "
                                  "members of one NCCL group on one GPU; use weight_sync=object_store")
        if self.rollout_engines and self.backend != "ray":
            raise ConfigError(f"cluster.rollout_engines={self.rollout_engines} needs cluster=ray "
                              "(the engines are Ray actors)")


@dataclass
class TrainConfig:
    """The whole run: ``agentropy train [experiment=NAME] [key=value ...]``."""

    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    seed: int = 0
    iterations: int = 10
    """RL iterations (learner updates); 0 runs only the SFT warm start and its evaluation"""
    tasks_per_iteration: int = 8
    """distinct tasks per RL iteration"""
    group_size: int = 4
    """rollouts per task (a GRPO group)"""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``"""
    torch_threads: int = 0
    """torch intra-op threads (0: torch's default, one per core)"""
    checkpoint_every: int = 1
    """iterations between checkpoints (the last iteration is always saved)"""
    keep_checkpoints: int = 2
    tensorboard: bool = True
    wandb_project: str = ""
    """log to this Weights & Biases project too ("" for none; needs the ``wandb`` extra)"""
    progress: bool = True
    """live progress display"""
    resume: str = ""
    """a run folder to continue from its last complete checkpoint"""

    def __post_init__(self) -> None:
        _positive("iterations", self.iterations, allow_zero=True)
        _positive("tasks_per_iteration", self.tasks_per_iteration)
        _positive("group_size", self.group_size)
        _choice("device", self.device, ("auto", "cpu", "cuda"))
        _positive("torch_threads", self.torch_threads, allow_zero=True)
        _positive("checkpoint_every", self.checkpoint_every)
        _positive("keep_checkpoints", self.keep_checkpoints)
        aepo_a = self.algorithm.aepo_a
        if aepo_a.enabled and aepo_a.branching and aepo_a.global_samples >= self.group_size:
            raise ConfigError(f"algorithm.aepo_a.global_samples={aepo_a.global_samples} leaves no branch "
                              f"in a group of group_size={self.group_size}: the branching rollout starts "
                              "that many episodes from the reset and forks the rest; give fewer")
        if (self.env.pool == "ray") != (self.cluster.backend == "ray"):
            raise ConfigError(f"env.pool={self.env.pool} needs cluster=ray, and cluster=ray needs "
                              f"env.pool=ray (cluster.backend is {self.cluster.backend!r})")
        if self.cluster.learner_ranks > 1 and (self.agent.lora.enabled or self.algorithm.kl.coef > 0):
            raise ConfigError(f"cluster.learner_ranks={self.cluster.learner_ranks}: sharded ranks do not "
                              "support agent.lora or the KL term's reference copy yet; use one rank, or "
                              "agent.lora.rank=0 and algorithm.kl.coef=0")
        if self.cluster.rollout_engines and self.agent.backend not in ("hf", "vllm"):
            raise ConfigError(f"cluster.rollout_engines={self.cluster.rollout_engines}: the engines run "
                              f"agent.backend=hf or vllm, not {self.agent.backend}")
        if self.algorithm.hapo.enabled and self.algorithm.hapo.tau > 0:
            if self.agent.backend != "hf":
                raise ConfigError(f"algorithm.hapo.tau: the token-aware sampling temperature needs "
                                  f"agent.backend=hf (got {self.agent.backend}); set algorithm.hapo.tau=0")
            if self.agent.temperature == 0:
                raise ConfigError("algorithm.hapo.tau: a greedy rollout (agent.temperature=0) has no "
                                  "temperature to adapt; set algorithm.hapo.tau=0")


def _register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)


_register()
