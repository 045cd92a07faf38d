"""Golden numbers (worked by hand in the comments) and loop-vs-vectorised checks for the math of
agentropy.algorithms.functional: GRPO, GiGPO, EMPG, EPO, PPO clip, KL, GAE, Clip-Cov / KL-Cov, aggregation,
schedules."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest
import torch
from agentropy.algorithms import functional as fn

DTYPES = [torch.float32, torch.float64]


def t(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# GRPO
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_grpo_unbiased_std(dtype):
    # Scores [1, 0, 0, 1] in one group: mean 0.5, deviations +-0.5, unbiased variance
    # 4 x 0.25 / 3 = 1/3, std 0.57735, A = +-0.5 / 0.57735 = +-0.8660 (the biased std gives +-1).
    adv = fn.grpo_advantages(t([1, 0, 0, 1], dtype), torch.tensor([7, 7, 7, 7]))
    assert adv.dtype == dtype
    assert adv.tolist() == pytest.approx([0.8660, -0.8660, -0.8660, 0.8660], abs=1e-4)


def test_grpo_group_of_one_and_no_std():
    # A group of one gets mean 0 and std 1 (verl-agent): A = 3 / (1 + 1e-6) ~ 3.
    # The other group [1, 0, 0, 1] without std: s - 0.5 = +-0.5.
    scores = t([3.0, 1, 0, 0, 1])
    groups = torch.tensor([9, 2, 2, 2, 2])
    assert fn.grpo_advantages(scores, groups)[0].item() == pytest.approx(3.0, abs=1e-5)
    assert fn.grpo_advantages(scores, groups, norm_by_std=False).tolist() == pytest.approx(
        [3.0, 0.5, -0.5, -0.5, 0.5])


def test_grpo_constant_group_is_zero():
    # std 0: (s - mean) / (0 + eps) = 0 / eps = 0.
    assert fn.grpo_advantages(t([2, 2, 2]), torch.tensor([0, 0, 0])).tolist() == [0, 0, 0]


def _grpo_loop(scores, groups, norm_by_std=True, eps=1e-6):
    by_group = defaultdict(list)
    for s, g in zip(scores, groups, strict=True):
        by_group[g].append(s)
    out = []
    for s, g in zip(scores, groups, strict=True):
        vals = by_group[g]
        if len(vals) == 1:
            mean, std = 0.0, 1.0
        else:
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        out.append((s - mean) / (std + eps) if norm_by_std else s - mean)
    return out


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_loop_vs_vectorised(norm_by_std):
    rng = random.Random(0)
    scores = [rng.choice([0.0, 10.0, -0.1, 9.9]) for _ in range(60)]
    groups = [rng.randrange(12) * 3 for _ in range(60)]
    fast = fn.grpo_advantages(t(scores), torch.tensor(groups), norm_by_std=norm_by_std)
    assert fast.tolist() == pytest.approx(_grpo_loop(scores, groups, norm_by_std), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Discounted returns and GiGPO
# ---------------------------------------------------------------------------------------------


def test_fixed_advantages_replace_whole_rows():
    # row 1 is fixed to 1: 1 on its completion tokens, 0 on its prompt; rows 0 and 2 keep theirs
    adv = t([[0.0, 0.5, 0.5], [0.0, -0.3, -0.3], [0.0, 0.0, 2.0]])
    mask = torch.tensor([[False, True, True], [False, True, True], [False, False, True]])
    out = fn.with_fixed_advantages(adv, t([math.nan, 1.0, math.nan]), mask)
    assert out.tolist() == [[0.0, 0.5, 0.5], [0.0, 1.0, 1.0], [0.0, 0.0, 2.0]]
    assert out.dtype == adv.dtype


def test_signal_group_fraction_by_hand():
    # Rows of 5 trajectories in 3 groups. Group 0: trajectory 0 has rows scoring 1 and 0 (mean
    # .5), trajectory 1 one row of .5 -> equal means, no signal. Group 1: 1 vs 0 -> signal.
    # Group 2: a single trajectory -> no signal.
    scores = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 0.3])
    traj = torch.tensor([0, 0, 1, 2, 3, 4])
    group = torch.tensor([0, 0, 0, 1, 1, 2])
    assert fn.signal_group_fraction(scores, traj, group).item() == pytest.approx(1 / 3)
    assert fn.signal_group_fraction(scores[:0], traj[:0], group[:0]).item() == 0.0


def test_discounted_returns_golden():
    # gamma 0.5, r = [1, 0, 4]: R2 = 4, R1 = 0 + 0.5 x 4 = 2, R0 = 1 + 0.5 x 2 = 2.
    assert fn.discounted_returns(t([1, 0, 4]), 0.5).tolist() == pytest.approx([2, 2, 4])


def test_trajectory_returns_loop_vs_vectorised():
    rng = random.Random(1)
    rows = []  # (traj, step, reward)
    for traj in range(7):
        for step in range(rng.randint(1, 6)):
            rows.append((traj * 5 + 2, step, rng.choice([0.0, 0.0, 1.0, 10.0])))
    rng.shuffle(rows)
    traj, step, reward = (list(x) for x in zip(*rows, strict=True))
    fast = fn.trajectory_returns(t(reward), torch.tensor(traj), torch.tensor(step), 0.95)
    expected = {}
    for j in set(traj):
        steps = sorted((s, r) for tj, s, r in rows if tj == j)
        rets = fn.discounted_returns(t([r for _, r in steps]), 0.95).tolist()
        for (s, _), ret in zip(steps, rets, strict=True):
            expected[(j, s)] = ret
    assert fast.tolist() == pytest.approx([expected[(j, s)] for j, s in zip(traj, step, strict=True)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gigpo_anchor_groups_with_singletons(dtype):
    # Anchor 0 holds returns {1, 0}: mean 0.5, unbiased std sqrt(0.5) = 0.70711, A = +-0.70711.
    # Anchors 1 and 2 are singletons: mean = the value itself, A = 0.
    returns, anchors = t([1, 0, 2, 5], dtype), torch.tensor([0, 0, 1, 2])
    assert fn.gigpo_step_advantages(returns, anchors).tolist() == pytest.approx(
        [0.70711, -0.70711, 0, 0], abs=1e-4)
    # Without std: R - mean = +-0.5, singletons 0.
    assert fn.gigpo_step_advantages(returns, anchors, norm_by_std=False).tolist() == pytest.approx(
        [0.5, -0.5, 0, 0])


def test_gigpo_loop_vs_vectorised():
    rng = random.Random(2)
    returns = [rng.uniform(-1, 10) for _ in range(50)]
    anchors = [rng.randrange(15) for _ in range(50)]
    by = defaultdict(list)
    for r, a in zip(returns, anchors, strict=True):
        by[a].append(r)
    expected = []
    for r, a in zip(returns, anchors, strict=True):
        vals = by[a]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        expected.append((r - mean) / (std + 1e-6))
    fast = fn.gigpo_step_advantages(t(returns), torch.tensor(anchors))
    assert fast.tolist() == pytest.approx(expected, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# EMPG
# ---------------------------------------------------------------------------------------------


def test_empg_two_trajectories_by_hand():
    # Two trajectories of two steps; rows are given out of order to check the (traj, step) keys.
    # Step entropies H: traj 0 = [1, 3], traj 1 = [2, 3]; batch min 1, max 3 ->
    #   H~ = (H - 1) / 2: traj 0 = [0, 1], traj 1 = [0.5, 1].
    # k = 1: exp(-H~) = [1, 0.367879, 0.606531, 0.367879]; mean = 2.342290 / 4 = 0.585572;
    #   g = exp(-H~) / mean = [1.707731, 0.628239, 1.035791, 0.628239] (batch mean 1).
    # Future clarity f = exp(-H~ of the next step of the same trajectory), 0 at a last step:
    #   traj 0 step 0 -> e^-1 = 0.367879; traj 0 step 1 -> 0; traj 1 step 0 -> e^-1; step 1 -> 0.
    # Trajectory advantages +1 (traj 0) and -1 (traj 1), zeta 0.1:
    #   A = g A + 0.1 f = [1.707731 + 0.036788, 0.628239, -1.035791 + 0.036788, -0.628239]
    #     = [1.744519, 0.628239, -0.999003, -0.628239]; mean 0.186379;
    #   zero-mean: [1.558140, 0.441860, -1.185382, -0.814618].
    order = [3, 0, 2, 1]  # row r holds canonical entry order[r]
    traj = [0, 0, 1, 1]
    step = [0, 1, 0, 1]
    h = [1.0, 3.0, 2.0, 3.0]
    adv = [1.0, 1.0, -1.0, -1.0]
    out = fn.empg_advantages(
        t([adv[i] for i in order]), t([h[i] for i in order]), torch.tensor([traj[i] for i in order]),
        torch.tensor([step[i] for i in order]), k=1.0, k_next=1.0, zeta=0.1)
    expected = [1.558140, 0.441860, -1.185382, -0.814618]
    assert out.tolist() == pytest.approx([expected[i] for i in order], abs=1e-5)
    assert out.sum().item() == pytest.approx(0.0, abs=1e-12)


def _empg_loop(adv, h, traj, step, k, k_next, zeta, eps=1e-8):
    lo, hi = min(h), max(h)
    hn = [(x - lo) / (hi - lo + eps) for x in h]
    scaled = [math.exp(-k * x) for x in hn]
    mean = sum(scaled) / len(scaled)
    where = {(tj, s): i for i, (tj, s) in enumerate(zip(traj, step, strict=True))}
    out = []
    for i in range(len(adv)):
        nxt = where.get((traj[i], step[i] + 1))
        f = math.exp(-k_next * hn[nxt]) if nxt is not None else 0.0
        out.append(scaled[i] / mean * adv[i] + zeta * f)
    m = sum(out) / len(out)
    return [x - m for x in out]


def test_empg_loop_vs_vectorised():
    rng = random.Random(3)
    rows = [(j, s) for j in range(9) for s in range(rng.randint(1, 7))]
    rng.shuffle(rows)
    traj, step = (list(x) for x in zip(*rows, strict=True))
    adv = [rng.uniform(-2, 2) for _ in rows]
    h = [rng.uniform(0.1, 4.0) for _ in rows]
    fast = fn.empg_advantages(t(adv), t(h), torch.tensor(traj), torch.tensor(step), k=0.7,
                             k_next=1.3, zeta=0.05)
    assert fast.tolist() == pytest.approx(_empg_loop(adv, h, traj, step, 0.7, 1.3, 0.05), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# EPO
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_epo_hinge_inside_above_below_and_gradient_sign(dtype):
    # History mean 1, kappa_l 0.5, kappa_r 2: corridor [0.5, 2].
    #   H = 0.2 (below): 0.5 - 0.2 = 0.3, dP/dH = -1;  H = 1 (inside): 0, dP/dH = 0;
    #   H = 3 (above): 3 - 2 = 1, dP/dH = +1.
    h = t([0.2, 1.0, 3.0], dtype).requires_grad_(True)
    p = fn.epo_entropy_penalty(h, 1.0, kappa_l=0.5, kappa_r=2.0)
    assert p.tolist() == pytest.approx([0.3, 0.0, 1.0], abs=1e-6)
    p.sum().backward()
    assert h.grad.tolist() == [-1.0, 0.0, 1.0]
    # Paper defaults kappa_l = 0, kappa_r = 2: only the upper side is ever active.
    assert fn.epo_entropy_penalty(t([0.2, 3.0]), 1.0).tolist() == pytest.approx([0.0, 1.0])


def test_epo_beta_schedule():
    # K = 150, k_mid = 75: beta_0 = 1 + e^0 = 2; beta_75 = 1 + e^-3 = 1.049787;
    # beta_150 = 1 + e^-6 = 1.002479.
    assert fn.epo_beta(0, 150) == pytest.approx(2.0)
    assert fn.epo_beta(75, 150) == pytest.approx(1.049787, abs=1e-6)
    assert fn.epo_beta(150, 150) == pytest.approx(1.002479, abs=1e-6)
    assert fn.epo_beta(10, 1) == pytest.approx(1 + math.exp(-30))  # K < 2 counts as 2


# ---------------------------------------------------------------------------------------------
# PPO clip, KL, value loss, GAE
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_ppo_clip_golden(dtype):
    # eps 0.2: (A = +1, r = 1.5) -> max(-1.5, -1.2) = -1.2; (A = -1, r = 0.5) -> max(0.5, 0.8)
    # = 0.8; token mean -0.2.
    logp = torch.log(t([1.5, 0.5], dtype))
    loss = fn.ppo_clip_loss(logp, torch.zeros_like(logp), t([1.0, -1.0], dtype))
    assert loss.dtype == dtype
    assert loss.tolist() == pytest.approx([-1.2, 0.8], abs=1e-6)
    assert loss.mean().item() == pytest.approx(-0.2, abs=1e-6)


def test_ppo_dual_clip_and_clip_higher():
    # A = -1, r = 5: max(5, 1.2) = 5, capped at -A c = 3 -> 3. A = -1, r = 2: max(2, 1.2) = 2 < 3.
    # A = +1, r = 5: max(-5, -1.2) = -1.2 (dual clip only for A < 0).
    logp = torch.log(t([5.0, 2.0, 5.0]))
    adv = t([-1.0, -1.0, 1.0])
    assert fn.ppo_clip_loss(logp, torch.zeros(3, dtype=torch.float64), adv).tolist() == pytest.approx(
        [3.0, 2.0, -1.2])
    assert fn.ppo_clip_loss(logp, torch.zeros(3, dtype=torch.float64), adv,
                           dual_clip_c=None).tolist() == pytest.approx([5.0, 2.0, -1.2])
    # Clip-higher 0.2 / 0.28: A = +1, r = 1.5 -> max(-1.5, -1.28) = -1.28.
    one = torch.log(t([1.5]))
    assert fn.ppo_clip_loss(one, torch.zeros(1, dtype=torch.float64), t([1.0]),
                           clip_high=0.28).item() == pytest.approx(-1.28)


def test_kl_k3_golden():
    # pi = 0.5, pi_ref = 0.25: d = ln 0.25 - ln 0.5 = -ln 2; e^d - d - 1 = 0.5 + 0.693147 - 1.
    out = fn.kl_k3(torch.log(t([0.5, 0.3])), torch.log(t([0.25, 0.3])))
    assert out.tolist() == pytest.approx([0.193147, 0.0], abs=1e-6)


def test_value_loss_clipped():
    # V = 2, old V = 0, R = 3, clip 0.5: unclipped (2 - 3)^2 = 1; clipped V = 0.5, (0.5 - 3)^2
    # = 6.25; 0.5 max(1, 6.25) = 3.125.
    assert fn.value_loss(t([2.0]), t([0.0]), t([3.0]), clip=0.5).item() == pytest.approx(3.125)
    assert fn.value_loss(t([2.0]), t([0.0]), t([3.0]), clip=None).item() == pytest.approx(0.5)


def test_gae_golden_and_prompt_values_do_not_leak():
    # Columns 0-1 prompt, 2-3 completion. gamma = lambda = 1, rewards [0, 1] on the completion,
    # V [0.5, 0.8]: delta_3 = 1 - 0.8 = 0.2, A_3 = 0.2; delta_2 = 0 + 0.8 - 0.5 = 0.3,
    # A_2 = 0.3 + 0.2 = 0.5; returns A + V = [1, 1]. Values at prompt positions change nothing.
    mask = torch.tensor([[False, False, True, True]])
    rewards = t([[0.0, 0.0, 0.0, 1.0]])
    for prompt_values in ([0.0, 0.0], [7.0, -3.0]):
        values = t([[*prompt_values, 0.5, 0.8]])
        adv, ret = fn.gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
        assert adv.tolist()[0] == pytest.approx([0, 0, 0.5, 0.2])
        assert ret.tolist()[0] == pytest.approx([0, 0, 1.0, 1.0])


def _gae_loop(rewards, values, gamma, lam):
    adv, last, next_v = [0.0] * len(rewards), 0.0, 0.0
    for i in reversed(range(len(rewards))):
        delta = rewards[i] + gamma * next_v - values[i]
        last = delta + gamma * lam * last
        adv[i], next_v = last, values[i]
    return adv


def test_gae_loop_vs_vectorised():
    rng = random.Random(4)
    rows, width = 6, 12
    mask = torch.zeros(rows, width, dtype=torch.bool)
    rewards = torch.zeros(rows, width, dtype=torch.float64)
    values = torch.randn(rows, width, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for r in range(rows):
        start, n = rng.randint(1, 5), rng.randint(1, 6)
        mask[r, start:start + n] = True
        rewards[r, start + n - 1] = rng.choice([0.0, 10.0])
    adv, _ = fn.gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    for r in range(rows):
        cols = mask[r].nonzero().flatten().tolist()
        expected = _gae_loop([rewards[r, c].item() for c in cols], [values[r, c].item() for c in cols],
                             0.9, 0.8)
        assert adv[r, cols].tolist() == pytest.approx(expected)
        assert adv[r, ~mask[r]].abs().sum().item() == 0


def test_masked_whiten():
    x = t([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    w = fn.masked_whiten(x, mask)
    # mean 2, unbiased var 1: [-1, 0, 1], padding 0.
    assert w.tolist()[0] == pytest.approx([-1, 0, 1, 0], abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Clip-Cov and KL-Cov token selection
# ---------------------------------------------------------------------------------------------


def test_clip_cov_selects_the_in_band_unclipped_token():
    # One row, 5 tokens. A = [3, 3, -1, -1, 1] (mean 1), log pi = [-0.5, -3.5, -0.5, -3.5, -2]
    # (mean -2): c = (A - 1)(log pi + 2) = [2 x 1.5, 2 x -1.5, -2 x 1.5, -2 x -1.5, 0]
    # = [3, -3, -3, 3, 0]. In (lb 1, ub 5): tokens 0 and 3. Token 3 is clipped by PPO
    # (A < 0 and r = e^-1 < 0.8), so only token 0 is a candidate; max(1, floor(2e-4 x 5)) = 1
    # token is picked: token 0, whose loss and gradient become 0.
    from agentropy.algorithms.losses import PolicyInputs, clip_cov
    from agentropy.configs.schema import PolicyLossConfig

    logp = t([[-0.5, -3.5, -0.5, -3.5, -2.0]]).requires_grad_(True)
    old = logp.detach().clone()
    old[0, 3] += 1.0
    adv = t([[3.0, 3.0, -1.0, -1.0, 1.0]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    cov = fn.token_covariance(logp, adv, mask)
    assert cov.tolist()[0] == pytest.approx([3, -3, -3, 3, 0])
    cfg = PolicyLossConfig(name="clip_cov", clip_cov_ratio=2e-4, clip_cov_lb=1.0, clip_cov_ub=5.0)
    out = clip_cov(PolicyInputs(logp, old, adv, mask, torch.Generator().manual_seed(0)), cfg)
    assert out.selected.tolist() == [[True, False, False, False, False]]
    assert out.clipped.tolist() == [[False, False, False, True, False]]
    out.loss.sum().backward()
    # Token 0 selected -> 0; token 3 clipped -> no gradient; others -A r with r = 1 -> -A.
    assert logp.grad.tolist()[0] == pytest.approx([0.0, -3.0, 1.0, 0.0, -1.0])
    assert out.loss.tolist()[0] == pytest.approx([0.0, -3.0, 1.0, 0.8, -1.0])


def test_clip_cov_pick_count_and_seeded():
    # 100 candidates, ratio 0.05: floor(0.05 x 100) = 5 picked; the same seed picks the same.
    cov = torch.full((4, 25), 2.0, dtype=torch.float64)
    mask = torch.ones(4, 25, dtype=torch.bool)
    clipped = torch.zeros_like(mask)
    picks = [fn.clip_cov_select(cov, mask, clipped, ratio=0.05, generator=torch.Generator().manual_seed(s))
             for s in (1, 1, 2)]
    assert int(picks[0].sum()) == 5
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])
    # No candidate in the band: nothing picked.
    none = fn.clip_cov_select(cov * 0, mask, clipped, ratio=0.05)
    assert int(none.sum()) == 0


def test_kl_cov_selects_top_covariance_tokens():
    # A = [2, 0, 1, 0, 2] (mean 1), log pi = [-0.5, -1, -2, -3, -3.5] (mean -2):
    # c = [1 x 1.5, -1 x 1, 0 x 0, -1 x -1, 1 x -1.5] = [1.5, -1, 0, 1, -1.5].
    # ratio 0.4: floor(0.4 x 5) = 2 tokens, the top two: 0 (1.5) and 3 (1).
    # With old log pi = log pi - 0.1: r = e^0.1; token 0's loss = -2 e^0.1 + 1 x 0.1 = -2.110342.
    from agentropy.algorithms.losses import PolicyInputs, kl_cov
    from agentropy.configs.schema import PolicyLossConfig

    logp = t([[-0.5, -1.0, -2.0, -3.0, -3.5]])
    adv = t([[2.0, 0.0, 1.0, 0.0, 2.0]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    out = kl_cov(PolicyInputs(logp, logp - 0.1, adv, mask), PolicyLossConfig(name="kl_cov",
                                                                                kl_cov_ratio=0.4))
    assert out.selected.tolist() == [[True, False, False, True, False]]
    assert out.loss[0, 0].item() == pytest.approx(-2.110342, abs=1e-6)
    assert out.loss[0, 3].item() == pytest.approx(0.1)  # -0 x r + 0.1
    assert out.loss[0, 2].item() == pytest.approx(-math.exp(0.1))  # unselected: -A r, no clip
    # Masked-out tokens are never picked.
    mask[0, 0] = False
    assert not fn.kl_cov_select(fn.token_covariance(logp, adv, mask), mask, ratio=0.4)[0, 0]


# ---------------------------------------------------------------------------------------------
# Aggregation: every mode, and the nested trajectory mode
# ---------------------------------------------------------------------------------------------

LOSS3 = torch.tensor([[1.0, 0.0], [2.0, 2.0], [4.0, 0.0]])
MASK3 = torch.tensor([[1, 0], [1, 1], [1, 0]], dtype=torch.bool)
TRAJ3 = torch.tensor([5, 5, 8])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 2.25),  # (1 + 2 + 2 + 4) / 4 tokens
        ("seq-mean-token-mean", 7 / 3),  # rows 1, 2, 4 -> 7 / 3
        ("seq-mean-token-sum", 3.0),  # rows 1, 4, 4 -> 9 / 3
        ("seq-mean-token-sum-norm", 4.5),  # (1 + 4 + 4) / T, T = 2
        # Rows 1 and 2 are trajectory 5, row 4 trajectory 8: (1 + 2) / 2 = 1.5 and 4 ->
        # (1.5 + 4) / 2 = 2.75.
        ("traj-mean-turn-mean-token-mean", 2.75),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_aggregation_mode(mode, expected, dtype):
    out = fn.aggregate(LOSS3.to(dtype), MASK3, mode, traj_ids=TRAJ3)
    assert out.dtype == dtype
    assert out.item() == pytest.approx(expected)


def test_nested_mode_ignores_empty_rows_and_padding():
    # An extra trajectory whose only row has no token changes nothing; neither does padding.
    loss = torch.cat([LOSS3, torch.tensor([[9.0, 9.0]])])
    mask = torch.cat([MASK3, torch.tensor([[False, False]])])
    traj = torch.cat([TRAJ3, torch.tensor([11])])
    assert fn.aggregate(loss, mask, "traj-mean-turn-mean-token-mean", traj_ids=traj).item() == 2.75
    padded = torch.nn.functional.pad(loss, (0, 3), value=5.0)
    padded_mask = torch.nn.functional.pad(mask, (0, 3))
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                 "traj-mean-turn-mean-token-mean"):
        assert fn.aggregate(padded, padded_mask, mode, traj_ids=traj).item() == pytest.approx(
            fn.aggregate(loss, mask, mode, traj_ids=traj).item())


def test_aggregation_weights_split_like_micro_batches():
    # Weights of the whole batch summed over any row split give the same total.
    w = fn.aggregation_weights(MASK3, "traj-mean-turn-mean-token-mean", traj_ids=TRAJ3)
    whole = (LOSS3 * w).sum()
    parts = sum((LOSS3[r] * w[r]).sum() for r in ([0], [1, 2]))
    assert parts.item() == pytest.approx(whole.item())


# ---------------------------------------------------------------------------------------------
# Schedules, curricula, checks
# ---------------------------------------------------------------------------------------------


def test_curricula_and_lr_schedule():
    # Rising: (1 - cos(pi t / T)) / 2 -> 0 at 0, 0.5 at T/2, 1 at and after T.
    assert [fn.cosine_rise(s, 200) for s in (0, 100, 200, 300)] == pytest.approx([0, 0.5, 1, 1])
    # Falling: (1 + cos(pi t / T)) / 2 -> 1, 0.5, 0, then 0.
    assert [fn.cosine_fall(s, 200) for s in (0, 100, 200, 300)] == pytest.approx([1, 0.5, 0, 0])
    # Warmup 0.1 of 100 steps: (s + 1) / 10 for s < 10; cosine to min ratio 0.2:
    # at step 55 (half way through the 90 decay steps) 0.2 + 0.8 x 0.5 = 0.6.
    lr = [fn.lr_multiplier(s, 100, schedule="cosine", warmup_ratio=0.1, min_lr_ratio=0.2)
          for s in (0, 9, 10, 55, 100)]
    assert lr == pytest.approx([0.1, 1.0, 1.0, 0.6, 0.2])
    assert fn.lr_multiplier(50, 100) == 1.0


def test_tool_call_reward():
    # min(1, 0.1 L): L = 3 -> 0.3, L = 10 -> 1, L = 40 -> 1.
    assert fn.tool_call_reward(torch.tensor([3, 10, 40])).tolist() == pytest.approx([0.3, 1.0, 1.0])


def test_repeated_ngram_and_top_std_groups():
    assert fn.has_repeated_ngram(torch.tensor([1, 2] * 10), n=2, count=10)
    assert not fn.has_repeated_ngram(torch.tensor([1, 2] * 9), n=2, count=10)
    assert not fn.has_repeated_ngram(torch.arange(5), n=20, count=10)
    # Groups 0 (std 0), 1 (std 7.07), 2 (std 0.71); keep 2 of 3 -> groups 1 and 2.
    values = t([0, 0, 10, 0, 1, 0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    assert fn.top_std_groups(values, groups, 0.67).tolist() == [False, False, True, True, True, True]


def test_token_logprobs_and_entropy_match_full_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 11, (2, 6), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    logp, ent = fn.token_logprobs_and_entropy(logits, ids, mask)
    full_lp = fn.token_logprobs(logits, ids)
    full_ent = torch.nn.functional.pad(fn.token_entropy(logits[:, :-1]), (1, 0))
    assert torch.allclose(logp, full_lp * mask) and torch.allclose(ent, full_ent * mask)
    with pytest.raises(ValueError, match="first token"):
        fn.token_logprobs_and_entropy(logits, ids, torch.ones(2, 6, dtype=torch.bool))
