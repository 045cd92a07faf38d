"""The training loop behind ``agentropy train``.

One run, in order:

1. **Set up** the run folder (Hydra's output dir): the model (the local tiny model is built into
   ``RUN/model``), the rollout backend, the environment pools, the episode and metrics logs.
   With ``resume=RUN`` the newest complete checkpoint is loaded and every log is cut back to
   what it held at that checkpoint, so nothing is lost or recorded twice.
2. **SFT warm start** (``sft.enabled``): a scripted expert plays the training split through the
   policy's own prompt templates; the policy imitates its completions (:mod:`agentropy.algorithms.sft`).
3. **Evaluate** the starting policy on the held-out splits, sampled and greedy, on fixed tasks
   (iteration 0), and checkpoint.
4. **RL iterations** 1..N: collect ``tasks_per_iteration`` x ``group_size`` episodes -> the
   extra rollouts the learner's parts ask for, merged in by them (AEPO-T) -> ``collate`` ->
   ``Learner.update`` -> log the episodes with their advantages -> push the new weights to the
   rollout backend -> evaluate every ``eval.every`` iterations -> metrics -> checkpoint.
5. **Summary**: plots, and held-out success before and after RL.

The run folder: ``.hydra/config.yaml`` (resolved config), ``model/`` (tiny model and tokenizer),
``episodes.jsonl``, ``metrics.jsonl``, ``replay.jsonl`` (SPEAR), ``tensorboard/``,
``checkpoints/iter_NNNNNN/``, ``plots/{success,entropy}.png`` and ``summary.json``. With
``agent.lora.rank > 0`` (:mod:`agentropy.agents.lora`) checkpoints hold the adapter only (the base
stays in ``model/``) and ``final_model/`` is the trained policy with the adapter merged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from agentropy.agents.agent import Agent
from agentropy.agents.backends import BACKENDS
from agentropy.agents.backends.base import SamplingParams
from agentropy.algorithms.checkpoint import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from agentropy.algorithms.cluster import connect
from agentropy.algorithms.data import Trajectory, collate
from agentropy.algorithms.learner import Learner, LearnerSpec
from agentropy.algorithms.memory import engine_state_dict
from agentropy.algorithms.metrics import MetricsLog, plot_metrics, read_metrics
from agentropy.algorithms.rollout import RolloutStats, Task, collect
from agentropy.algorithms.sft import sft_train
from agentropy.configs.schema import ConfigError, TrainConfig
from agentropy.envs.pool import EnvPool, EnvSpec, make_pool
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import (
    Task as ProgressTask,
)
from rich.text import Text

from agentropy.records.episodes import EpisodeLog, EpisodeRecord
from agentropy.records.jsonl import AppendOnlyJsonl

if TYPE_CHECKING:
    from agentropy.algorithms.ray_learner import RemoteLearner

__all__ = ["Trainer", "train"]

log = logging.getLogger(__name__)


def train(cfg: TrainConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run ``cfg`` in ``run_dir``; returns the summary (also written to ``summary.json``)."""
    trainer = Trainer(cfg, run_dir)
    try:
        return trainer.run()
    finally:
        trainer.close()


# --------------------------------------------------------------------------- small pieces
class _InfoColumn(ProgressColumn):
    """The task's ``info`` field, or the collector's success rate and tokens/s."""

    def render(self, task: ProgressTask) -> Text:
        fields = task.fields
        if "info" in fields:
            return Text(str(fields["info"]))
        if "success" in fields:
            return Text(f"success {fields['success']:.2f}  {fields.get('tps', 0.0):.0f} tok/s")
        return Text("")


def _rollout_metrics(prefix: str, trajs: Sequence[Trajectory]) -> dict[str, float]:
    """Success, score, length, invalid-action rate (all, and split into format failures and
    env refusals), the length of won episodes, sampling entropy, failures of episodes, how many
    episodes were branches of another (a branching rollout) and the mean per-token sampling
    temperature when the turns were sampled at one per token."""
    done = [t for t in trajs if not t.failure]
    n, turns = max(len(done), 1), max(sum(t.length for t in done), 1)
    entropies = [turn.mean_entropy for t in done for turn in t.turns if turn.mean_entropy is not None]
    temps = [turn.mean_temperature for t in done for turn in t.turns if turn.mean_temperature is not None]
    won = [t.length for t in done if t.won]
    bad_format = sum(not turn.format_ok for t in done for turn in t.turns)
    out = {f"{prefix}/temperature": sum(temps) / len(temps)} if temps else {}
    return out | {
        # the sampling policy's mean token entropy: known even when the learner drops every row
        f"{prefix}/entropy": sum(entropies) / len(entropies) if entropies else math.nan,
        f"{prefix}/success": sum(t.won for t in done) / n,
        f"{prefix}/score": sum(t.score for t in done) / n,
        f"{prefix}/length": sum(t.length for t in done) / n,
        f"{prefix}/invalid_rate": sum(t.num_invalid for t in done) / turns,
        f"{prefix}/invalid_format_rate": bad_format / turns,
        f"{prefix}/invalid_env_rate": (sum(t.num_invalid for t in done) - bad_format) / turns,
        f"{prefix}/won_length": sum(won) / len(won) if won else math.nan,
        f"{prefix}/failures": float(len(trajs) - len(done)),
        f"{prefix}/branches": float(sum(bool(t.parent_id) for t in trajs)),  # forks of a branching rollout
    }


def _with_advantages(record: EpisodeRecord, advantages: Sequence[float]) -> EpisodeRecord:
    turns = tuple(
        dataclasses.replace(t, advantage=None if math.isnan(a) else float(a))
        for t, a in zip(record.turns, advantages, strict=True)
    )
    return dataclasses.replace(record, turns=turns)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- the trainer
class Trainer:
    """Owns one run: its model, backends, pools, logs and learner. See the module docstring."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not getattr(BACKENDS.get(cfg.agent.backend), "trains", True):
            raise ConfigError(f"agent.backend={cfg.agent.backend}: the learner cannot update this "
                              "backend's weights (its episodes can still be collated and trained on); "
                              "train with hf or vllm")
        if cfg.resume and Path(cfg.resume).resolve() != self.run_dir.resolve():
            raise ConfigError(f"resume: {cfg.resume} is not this run's folder {self.run_dir}")
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.device = torch.device(
            "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
            else "cpu"
        )
        _seed_everything(cfg.seed)
        self._closers: list[Any] = []

        # The model, its tokenizer, and the rollout backend.
        self.model_path = self._model_path()
        from agentropy.agents.tiny import load_pretrained

        # The trained weights are the float32 master unless algorithm.master_weights=compute;
        # agent.dtype is the rollout engine's and the forward pass's dtype.
        self.master_dtype = "float32" if cfg.algorithm.master_weights == "float32" else cfg.agent.dtype
        self.model, self.tokenizer = load_pretrained(self.model_path, dtype=self.master_dtype)
        self.model.to(self.device).eval()
        if cfg.cluster.learner_ranks > 1 and getattr(self.model.config, "tie_word_embeddings", False):
            raise ConfigError(f"cluster.learner_ranks={cfg.cluster.learner_ranks}: {cfg.agent.model} "
                              "ties its output head to its embeddings, which the sharded ranks cannot "
                              "split; use one rank or an untied model")
        if cfg.agent.lora.enabled:  # every learner then trains the adapters only (agents/lora.py)
            from agentropy.agents.lora import apply_lora

            self.model = apply_lora(self.model, cfg.agent.lora)
        # The cluster (cluster=ray: env workers are Ray actors, and so are the rollout engines
        # and the learner ranks when asked for), the rollout backend, then the environment
        # pools: one for training, one per evaluation split.
        self.cluster = connect(cfg.cluster)
        self._closers.append(self.cluster)
        for line in self.cluster.placement(env_workers=cfg.env.num_workers, pool=cfg.env.pool,
                                           backend=cfg.agent.backend, device=str(self.device)):
            log.info("placement: %s", line)
        self.agent = Agent(self._backend(), self.tokenizer, cfg.agent)
        self._closers.append(self.agent)
        self.train_pool = self._pool(cfg.env.train_split, cfg.tasks_per_iteration * cfg.group_size)
        eval_size = min(cfg.eval.pool_size or len(self.train_pool), max(cfg.eval.episodes, 1))
        self.eval_pools = {split: self._pool(split, eval_size) for split in cfg.env.eval_splits}

        # Logs.
        self.episodes = EpisodeLog(self.run_dir / "episodes.jsonl")
        self.replay_log = AppendOnlyJsonl(self.run_dir / "replay.jsonl")
        self._closers += [self.episodes, self.replay_log]
        self.learner: Learner | RemoteLearner | None = None
        self.metrics: MetricsLog | None = None
        self.start_iteration = 0
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            _InfoColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            disable=not cfg.progress,
        )

    # ------------------------------------------------------------------ set-up helpers
    def _model_path(self) -> Path | str:
        if self.cfg.agent.model != "tiny":
            return self.cfg.agent.model
        path = self.run_dir / "model"
        if not (path / "config.json").exists():
            from agentropy.agents.tiny import make_model

            make_model(path, self.cfg.agent.tiny)
        return path

    def _backend(self) -> Any:
        # Rollout engines as Ray actors (cluster.rollout_engines), or in this process: then the
        # HF backend serves the very model object the learner trains (a cast copy when
        # agent.dtype differs from the training dtype): no weight copy between them.
        if self.cfg.cluster.rollout_engines:
            from agentropy.agents.backends.ray_engines import RayEngines

            group = self.cluster.learner_group() if self.cfg.cluster.colocate else None
            return RayEngines(self.cfg.agent, self.model_path, self.cfg.cluster, group=group)
        backend, _ = BACKENDS.get(self.cfg.agent.backend)(self.cfg.agent, self.model_path,
                                                          policy=(self.model, self.tokenizer))
        return backend

    def _pool(self, split: str, size: int) -> EnvPool:
        env = self.cfg.env
        spec = EnvSpec(env.id, {**env.kwargs, "split": split, "max_episode_steps": env.max_turns})
        pool = make_pool([spec] * size, env.pool, num_workers=env.num_workers, timeout_s=env.step_timeout_s)
        self._closers.append(pool)
        return pool

    def _make_learner(self) -> Learner | RemoteLearner:
        """The learner: in this process, or ``cluster.learner_ranks`` Ray actors behind a
        :class:`~agentropy.algorithms.ray_learner.RemoteLearner` that the rest of the trainer uses
        the same way (it loads the new weights into ``self.model`` after each update)."""
        cfg = self.cfg
        spec = LearnerSpec(
            cfg.algorithm,
            model_path=str(self.model_path),
            master_dtype=self.master_dtype,
            compute_dtype=cfg.agent.dtype,
            total_steps=max(cfg.iterations, 1),
            max_new_tokens=cfg.agent.max_new_tokens,
            max_seq_len=2 * cfg.agent.max_prompt_tokens + cfg.agent.max_new_tokens,
            seed=cfg.seed,
        )
        if cfg.cluster.learner_ranks == 1:
            return spec.build(self.model, self.tokenizer)
        from agentropy.algorithms.ray_learner import RemoteLearner

        learner = RemoteLearner(spec, self.model, cfg.cluster,
                                group=self.cluster.learner_group() if cfg.cluster.colocate else None)
        self._closers.append(learner)
        if cfg.cluster.weight_sync == "broadcast":  # rank 0 -> engines, not through the driver
            from agentropy.agents.backends.weight_sync import Manifest

            manifest = Manifest.of(engine_state_dict(self.model, cfg.agent.dtype))
            learner.link_engines(self.agent.backend, manifest)
        return learner

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        with self.progress:
            resumed = self._resume() if cfg.resume else False
            if not resumed:
                self._start_fresh()
            main = self.progress.add_task("RL iterations", total=cfg.iterations,
                                          completed=self.start_iteration, info="")
            for iteration in range(self.start_iteration + 1, cfg.iterations + 1):
                self._iteration(iteration, main)
        if cfg.agent.lora.enabled:  # the consolidated policy: a plain model folder
            from agentropy.agents.lora import save_merged

            save_merged(self.model, self.tokenizer, self.run_dir / "final_model")
        summary = self._summary()
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _start_fresh(self) -> None:
        """SFT warm start (if enabled), the learner, evaluation of the start, checkpoint 0."""
        cfg = self.cfg
        self.episodes.truncate(0)
        self.replay_log.truncate(0)
        self.metrics = self._open_metrics(start_iteration=0, truncate_to=0)
        row: dict[str, float] = {}
        if cfg.sft.enabled and cfg.sft.steps > 0:
            with self._timed(row, "time/sft_s"):
                row.update(self._sft())
        self.learner = self._make_learner()
        self._sync_weights(version=0)
        if cfg.eval.at_start:
            row.update(self._evaluate(iteration=0))
        self.metrics.log(0, row)
        self._checkpoint(0)
        self._plot()

    def _sft(self) -> dict[str, float]:
        cfg = self.cfg
        from agentropy.agents.backends.scripted import ScriptedBackend

        if cfg.sft.dataset:  # bring your own demonstrations (agentropy export output)
            from agentropy.algorithms.sft_data import load_sft_trajectories

            demos = kept = load_sft_trajectories(cfg.sft.dataset, self.tokenizer)
        else:
            expert = Agent(ScriptedBackend(self.tokenizer, policy="expert", seed=cfg.seed,
                                           detour=cfg.sft.detour),
                           self.tokenizer, cfg.agent)
            tasks = [Task(seed=10_000_000 + cfg.seed * 100_003 + i) for i in range(cfg.sft.episodes)]
            demos = collect(self.train_pool, expert, tasks, 1, log_to=self.episodes, phase="sft",
                            iteration=0, progress=self.progress)
            kept = [t for t in demos if t.won and not t.failure]
        if not kept:
            raise RuntimeError("SFT: the expert won no episode; nothing to imitate")
        job = self.progress.add_task("SFT steps", total=cfg.sft.steps, info="")
        result = sft_train(
            self.model, kept, cfg.sft, pad_token_id=self.tokenizer.pad_token_id, seed=cfg.seed,
            on_step=lambda s, loss: self.progress.update(job, completed=s + 1, info=f"loss {loss:.3f}"),
        )
        self.progress.remove_task(job)
        return {
            "sft/expert_success": sum(t.won for t in demos) / len(demos),
            "sft/rows": result.rows,
            "sft/first_loss": result.first_loss,
            "sft/last_loss": result.last_loss,
        }

    def _iteration(self, iteration: int, main_task: Any) -> None:
        """One RL iteration: rollout, update, log, sync, evaluate, checkpoint."""
        cfg = self.cfg
        assert self.learner is not None and self.metrics is not None
        row: dict[str, float] = {}
        self.progress.update(main_task, description=f"RL iteration {iteration} [rollout]")

        # Rollout: tasks_per_iteration tasks, group_size episodes each (GRPO groups).
        rng = np.random.default_rng([cfg.seed, iteration])
        tasks = [Task(seed=int(s)) for s in rng.integers(0, 2**31 - 1, size=cfg.tasks_per_iteration)]
        stats, records = RolloutStats(), []
        sampling = self.learner.rollout_sampling(self.agent.sampling)  # the parts' rule (HAPO's T_t)
        with self._timed(row, "time/rollout_s"):
            trajs = collect(self.train_pool, self.agent, tasks, cfg.group_size, records=records,
                            phase="train", iteration=iteration, sampling=sampling,
                            first_group_id=(iteration - 1) * cfg.tasks_per_iteration,
                            stats=stats, progress=self.progress, branch_rule=self.learner.branch_rule())
        row.update(_rollout_metrics("train", trajs))
        row["rollout/tokens_per_s"] = stats.tokens_per_second
        good = [t for t in trajs if not t.failure]
        good = self._extra_rollouts(iteration, tasks, good, records, stats, row)

        # Update.
        self.progress.update(main_task, description=f"RL iteration {iteration} [update]")
        advantages: dict[str, list[float]] = {}
        if good:
            batch = collate(good, pad_token_id=self.tokenizer.pad_token_id)
            sleep = getattr(self.agent.backend, "sleep", None)  # vLLM frees its GPU memory
            if sleep is not None:
                sleep()
            with self._timed(row, "time/update_s"):
                result = self.learner.update(batch, labels=[t.episode_id for t in good])
            row.update(result.metrics)
            per_row = result.row_advantages.detach().cpu().tolist()
            rows = zip(batch.traj_index.tolist(), batch.turn_index.tolist(), per_row, strict=True)
            for ti, k, adv in rows:
                advantages.setdefault(good[ti].episode_id, [math.nan] * good[ti].length)[k] = adv
            logs = result.records
        else:
            log.warning("iteration %d: every episode failed; no update", iteration)
            logs = self.learner.records()

        # The episodes, now with the advantage each turn was trained with.
        for record in records:
            adv = advantages.get(record.episode_id)
            self.episodes.append(_with_advantages(record, adv) if adv else record)
        if "replay" in logs:  # the replay buffer's rows, with their episode ids
            self.replay_log.write_line(json.dumps({"iteration": iteration, "rows": logs["replay"]}))
        row.update(self._sync_weights(version=iteration))

        # Evaluation, metrics, checkpoint.
        if (cfg.eval.every and iteration % cfg.eval.every == 0) or iteration == cfg.iterations:
            self.progress.update(main_task, description=f"RL iteration {iteration} [eval]")
            row.update(self._evaluate(iteration))
        self.metrics.log(iteration, row)
        if iteration % cfg.checkpoint_every == 0 or iteration == cfg.iterations:
            self._checkpoint(iteration)
        self._plot()
        info = f"train success {row['train/success']:.2f}"
        self.progress.update(main_task, completed=iteration, info=info,
                             description=f"RL iteration {iteration}")
        log.info("iteration %d/%d: %s, invalid %.3f, entropy %s, %.0f s", iteration, cfg.iterations,
                 info, row["train/invalid_rate"], f"{row.get('actor/entropy', math.nan):.3f}",
                 row.get("time/rollout_s", 0) + row.get("time/update_s", 0))

    def _extra_rollouts(self, iteration: int, tasks: list[Task], good: list[Trajectory],
                        records: list[EpisodeRecord], stats: RolloutStats,
                        row: dict[str, float]) -> list[Trajectory]:
        """The extra rollouts the learner's parts ask for (:meth:`Learner.rollout_requests`, e.g.
        AEPO-T's tempered episodes), each on the training pool after the main rollout, then merged
        by the parts into the episodes trained on (:meth:`Learner.merge_rollouts`). They sample
        with the agent's settings at the request's temperature: the parts'
        :meth:`~agentropy.algorithms.learner.Learner.rollout_sampling` rule (HAPO's per-token
        temperature) is the main rollout's only.
        Their groups are numbered after every main group of the run (the k-th request's after
        k x ``iterations`` x ``tasks_per_iteration``); their episodes are logged as training
        episodes."""
        cfg = self.cfg
        assert self.learner is not None
        requests = self.learner.rollout_requests(len(tasks), cfg.group_size)
        extras = []
        for k, request in enumerate(requests, start=1):
            sampling = dataclasses.replace(self.agent.sampling, temperature=request.temperature)
            first = (k * cfg.iterations + iteration - 1) * cfg.tasks_per_iteration
            with self._timed(row, "time/extra_rollout_s"):
                extra = collect(self.train_pool, self.agent, [tasks[i] for i in request.tasks],
                                request.group_size, records=records, phase="train", iteration=iteration,
                                first_group_id=first, sampling=sampling, stats=stats, progress=self.progress)
            row["rollout/extra_episodes"] = row.get("rollout/extra_episodes", 0.0) + len(extra)
            extras.append([t for t in extra if not t.failure])
        return self.learner.merge_rollouts(good, extras) if requests else good

    def _evaluate(self, iteration: int) -> dict[str, float]:
        """Held-out success on fixed tasks, sampled and (optionally) greedy."""
        cfg = self.cfg
        if not cfg.eval.episodes:
            return {}
        out: dict[str, float] = {}
        modes = {"": SamplingParams.from_config(cfg.agent, temperature=cfg.eval.temperature)}
        if cfg.eval.greedy:
            modes["_greedy"] = SamplingParams.from_config(cfg.agent, temperature=0.0)
        tasks = [Task(seed=cfg.eval.seed + i, options={"task": i}) for i in range(cfg.eval.episodes)]
        for split, pool in self.eval_pools.items():
            for suffix, sampling in modes.items():
                t0 = time.perf_counter()
                trajs = collect(pool, self.agent, tasks, 1, log_to=self.episodes, phase="eval",
                                iteration=iteration, sampling=sampling, progress=self.progress)
                metrics = _rollout_metrics(f"eval/{split}", trajs)
                out.update({k + suffix: v for k, v in metrics.items()})
                out[f"time/eval_{split}{suffix}_s"] = time.perf_counter() - t0
                if metrics[f"eval/{split}/failures"]:
                    log.warning("eval %s: %d episodes failed", split, int(metrics[f"eval/{split}/failures"]))
                log.info("eval %s%s after iteration %d: success %.3f, invalid %.3f", split,
                         suffix or " (sampled)", iteration, metrics[f"eval/{split}/success"],
                         metrics[f"eval/{split}/invalid_rate"])
        return out

    def _sync_weights(self, version: int) -> dict[str, float]:
        """Push the learner's weights (LoRA adapters merged in), cast to ``agent.dtype``, into the
        rollout backend; the HF backend serving this very model needs no copy. A sleeping vLLM
        engine wakes up for it. Returns the backend's sync metrics (Ray engines: bytes, seconds)."""
        self.model.eval()
        if getattr(self.agent.backend, "model", None) is self.model:
            state = self.model.state_dict()
        else:
            state = engine_state_dict(self.model, self.cfg.agent.dtype)
        self.agent.backend.update_weights(state, version=version)
        sync_metrics = getattr(self.agent.backend, "sync_metrics", None)
        return sync_metrics() if sync_metrics is not None else {}

    # ------------------------------------------------------------------ persistence
    def _open_metrics(self, *, start_iteration: int, truncate_to: int) -> MetricsLog:
        from omegaconf import OmegaConf

        metrics = MetricsLog(self.run_dir, tensorboard=self.cfg.tensorboard,
                             wandb_project=self.cfg.wandb_project, start_iteration=start_iteration,
                             config=OmegaConf.to_container(OmegaConf.structured(self.cfg)))
        metrics.truncate(truncate_to)
        self._closers.append(metrics)
        return metrics

    def _checkpoint(self, iteration: int) -> None:
        assert self.learner is not None and self.metrics is not None
        state = {
            "learner": self.learner.state_dict(),
            "rng": capture_rng(),
            "policy_version": self.agent.policy_version,
        }
        meta = {
            "episodes_offset": self.episodes.tell(),
            "metrics_offset": self.metrics.tell(),
            "replay_offset": self.replay_log.tell(),
        }
        model_state = self.model.state_dict()
        if self.cfg.agent.lora.enabled:  # the adapter only; the base stays in RUN/model
            from agentropy.agents.lora import adapter_state_dict

            model_state, meta["lora"] = adapter_state_dict(self.model), True
        save_checkpoint(self.run_dir, iteration, model_state=model_state, state=state,
                        meta=meta, keep_last=self.cfg.keep_checkpoints)

    def _resume(self) -> bool:
        """Continue from the newest complete checkpoint; False if there is none yet."""
        path = latest_checkpoint(self.run_dir)
        if path is None:
            log.warning("resume: %s has no complete checkpoint yet; starting over", self.run_dir)
            return False
        ckpt = load_checkpoint(path, map_location=self.device)
        log.info("resuming %s from %s", self.run_dir, path.name)
        if bool(ckpt.meta.get("lora")) != self.cfg.agent.lora.enabled:
            saved = "with" if ckpt.meta.get("lora") else "without"
            raise ConfigError(f"resume: {path.name} was saved {saved} agent.lora; resume with the run's "
                              "own agent.lora settings")
        if self.cfg.agent.lora.enabled:
            from agentropy.agents.lora import load_adapter_state_dict

            load_adapter_state_dict(self.model, ckpt.model_state)
        else:
            self.model.load_state_dict(ckpt.model_state)
        self.episodes.truncate(ckpt.meta["episodes_offset"])
        self.replay_log.truncate(ckpt.meta["replay_offset"])
        self.metrics = self._open_metrics(start_iteration=ckpt.iteration + 1,
                                          truncate_to=ckpt.meta["metrics_offset"])
        self.learner = self._make_learner()
        self.learner.load_state_dict(ckpt.state["learner"])
        restore_rng(ckpt.state["rng"])
        self.start_iteration = ckpt.iteration
        self._sync_weights(version=int(ckpt.state["policy_version"]))
        return True

    def _plot(self) -> None:
        rows = read_metrics(self.run_dir / "metrics.jsonl")
        plot_metrics(rows, self.run_dir / "plots")

    def _summary(self) -> dict[str, Any]:
        """Held-out results at the start (after SFT) and at the end, per split and mode."""
        rows = [r for r in read_metrics(self.run_dir / "metrics.jsonl")
                if any(k.startswith("eval/") for k in r)]
        first = rows[0] if rows and rows[0]["iteration"] == 0 else {"iteration": None}
        last = rows[-1] if rows and rows[-1]["iteration"] > 0 else {"iteration": None}
        out: dict[str, Any] = {"run_dir": str(self.run_dir), "iterations": self.cfg.iterations,
                               "eval_episodes": self.cfg.eval.episodes, "splits": {}}
        for split in self.cfg.env.eval_splits:
            entry = {}
            for label, r in (("start", first), ("end", last)):
                entry[label] = {
                    key: r.get(f"eval/{split}/{key}")
                    for key in ("success", "success_greedy", "invalid_rate", "invalid_rate_greedy",
                                "score", "length")
                }
                entry[label]["iteration"] = r.get("iteration")
            out["splits"][split] = entry
        return out

    @contextmanager
    def _timed(self, row: dict[str, float], key: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            row[key] = time.perf_counter() - t0

    def close(self) -> None:
        for thing in reversed(self._closers):
            try:
                thing.close()
            except Exception:  # noqa: BLE001  (closing must not hide the run's own error)
                log.warning("closing %r failed", thing, exc_info=True)
        self._closers.clear()
