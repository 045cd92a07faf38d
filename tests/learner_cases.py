"""Synthetic trajectories for learner tests: real token ids from the tiny model's tokenizer,
groups with varied rewards so that every estimator gives non-zero advantages."""

from __future__ import annotations

import random

from agentropy.algorithms.data import TokenBatch, Trajectory, Turn, collate

ROOMS = ("kitchen", "corridor", "pantry", "garden")
ACTIONS = ("go north", "go south", "take coin", "open door", "look")


def make_turn(tokenizer, rng: random.Random, room: str, *, reward: float, valid: bool = True,
              complete: bool = True, finish: str = "stop") -> Turn:
    obs = f"You are in the {room}. There is a door."
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": f"{obs}\nAdmissible actions: {', '.join(ACTIONS)}"}],
        tokenize=False, add_generation_prompt=True)
    action = rng.choice(ACTIONS)
    text = (f"<think>the {room} is here</think><action>{action}</action>" if complete
            else f"<think>the {room} is here and")
    prompt_ids = tuple(tokenizer(prompt).input_ids)
    completion_ids = tuple(tokenizer(text).input_ids) + (tokenizer.eos_token_id,)
    logprobs = tuple(-rng.uniform(0.5, 3.0) for _ in completion_ids)
    return Turn(prompt_ids=prompt_ids, completion_ids=completion_ids, completion_logprobs=logprobs,
                reward=reward, action_is_valid=valid, observation=obs, action=action,
                finish_reason=finish)


def make_trajectories(tokenizer, *, groups: int = 2, group_size: int = 2, seed: int = 0,
                      max_turns: int = 3) -> list[Trajectory]:
    """``groups`` x ``group_size`` episodes; in every group one member wins and one loses."""
    rng = random.Random(seed)
    out = []
    for g in range(groups):
        for i in range(group_size):
            won = i % 2 == 0
            k = rng.randint(1, max_turns)
            turns = tuple(
                make_turn(tokenizer, rng, ROOMS[(t + i) % len(ROOMS)],
                          reward=1.0 if (won and t == k - 1) else 0.0,
                          valid=rng.random() > 0.2)
                for t in range(k)
            )
            out.append(Trajectory(env_id="agentropy/TWX-v0", seed=g, group_id=g, policy_version=0,
                                  turns=turns, won=won, score=float(won)))
    return out


def make_batch(tokenizer, **kwargs) -> TokenBatch:
    return collate(make_trajectories(tokenizer, **kwargs), pad_token_id=tokenizer.pad_token_id)


def rows_batch(*, group, traj, turn, num_turns=None, anchor=None, success=None, rewards=None,
               valid=None, prompt_len=3, completion_len=2, width=None) -> TokenBatch:
    """A TokenBatch made row by row (token ids are arbitrary), for estimator and replay tests."""
    import torch

    n = len(group)
    if num_turns is None:
        counts: dict[int, int] = {}
        for j in traj:
            counts[j] = counts.get(j, 0) + 1
        num_turns = [counts[j] for j in traj]
    p = [prompt_len] * n if isinstance(prompt_len, int) else list(prompt_len)
    c = [completion_len] * n if isinstance(completion_len, int) else list(completion_len)
    width = width or max(a + b for a, b in zip(p, c, strict=True))
    ids = torch.zeros(n, width, dtype=torch.long)
    attention = torch.zeros(n, width, dtype=torch.long)
    loss = torch.zeros(n, width, dtype=torch.bool)
    logprobs = torch.zeros(n, width)
    for r in range(n):
        ids[r, : p[r] + c[r]] = torch.arange(5 + r, 5 + r + p[r] + c[r]) % 50 + 3
        attention[r, : p[r] + c[r]] = 1
        loss[r, p[r]: p[r] + c[r]] = True
        logprobs[r, p[r]: p[r] + c[r]] = -0.5 - 0.1 * r
    success = [0.0] * n if success is None else success
    rewards = [0.0] * n if rewards is None else rewards
    episode = {}
    for j, rwd in zip(traj, rewards, strict=True):
        episode[j] = episode.get(j, 0.0) + rwd

    def col(values, dtype):
        return torch.tensor(list(values), dtype=dtype)

    return TokenBatch(
        input_ids=ids, attention_mask=attention, loss_mask=loss, rollout_logprobs=logprobs,
        group_index=col(group, torch.long), traj_index=col(traj, torch.long),
        turn_index=col(turn, torch.long), num_turns=col(num_turns, torch.long),
        anchor_index=col(anchor if anchor is not None else range(n), torch.long),
        prompt_length=col(p, torch.long), completion_length=col(c, torch.long),
        rewards=col(rewards, torch.float32), episode_return=col((episode[j] for j in traj), torch.float32),
        success=col(success, torch.float32),
        action_is_valid=col(valid if valid is not None else [True] * n, torch.bool),
        completion_truncated=torch.zeros(n, dtype=torch.bool),
    )
