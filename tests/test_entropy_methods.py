"""Golden tests for agentropy.algorithms.entropy_methods: the worked examples of the method spec,
loop-vs-vectorised checks, padding invariance and each method's neutral setting."""

from __future__ import annotations

import math

import pytest
import torch
from agentropy.algorithms import entropy_methods as em
from agentropy.algorithms.functional import grpo_advantages, ppo_clip_loss, token_entropy

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def close(a, b, tol=1e-4):
    assert torch.allclose(torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D), atol=tol, rtol=0), (a, b)


# ------------------------------------------------------------------------------------- SIREN

# Row 1, token 1: the cumulative mass is .82 at its third token, clear of top_p = .8 (a
# boundary tie there would make the nucleus depend on float rounding).
SIREN_P = [
    [[.70, .15, .10, .04, .01], [.40, .30, .20, .06, .04], [.90, .05, .03, .01, .01]],
    [[.50, .25, .15, .05, .05], [.34, .33, .15, .09, .09], [.97, .01, .01, .005, .005]],
]


def test_siren_worked_example_as_released():
    logits = torch.log(t(SIREN_P)).requires_grad_(True)
    mask = torch.ones(2, 3)
    close(token_entropy(logits.detach()), [[0.9393, 1.3472, 0.4419], [1.2773, 1.4507, 0.1746]])
    hp = em.siren_top_p_entropy(logits, top_p=0.8, include_crossing_token=False)
    # (0,1): kept .4,.3 -> q = 4/7, 3/7 -> H = 0.6829; (1,0): 2/3, 1/3 -> 0.6365;
    # (1,1): 34/67, 33/67 -> 0.6930
    close(hp, [[0, 0.6829, 0], [0.6365, 0.6930, 0]])
    sel = em.siren_peak_mask(hp, mask, quantile=0.8)
    # tau_0 = 0.6 * 0.6829 = 0.4097, tau_1 = 0.6365 + 0.6 * (0.6930 - 0.6365) = 0.6704
    assert sel.tolist() == [[False, True, False], [False, True, False]]
    loss, h_sel = em.siren_entropy_loss(logits, mask, 1.0, coef=0.005, top_p=0.8, quantile=0.8,
                                        include_crossing_token=False)
    close(h_sel, 0.6880)
    close(loss, 0.000487, 1e-6)
    # dL/dH_sel = 2 * 0.005 * (0.6880 - 1) = -0.00312
    close(2 * 0.005 * (h_sel.item() - 1.0), -0.00312, 1e-5)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_siren_crossing_token_default_includes_it():
    logits = torch.log(t(SIREN_P))
    hp = em.siren_top_p_entropy(logits, top_p=0.8)
    # (0,0) keeps .70, .15 (crossing): q = 14/17, 3/17
    q = torch.tensor([.70, .15], dtype=D) / 0.85
    close(hp[0, 0], -(q * q.log()).sum())
    # (0,2): p_max = .9 >= .8 -> nucleus is the top token alone, entropy 0 (not an empty set)
    close(hp[0, 2], 0.0)
    # top_p = 1 with the crossing token: the full entropy
    close(em.siren_top_p_entropy(logits, top_p=1.0, top_k=None), token_entropy(logits), 1e-9)


def test_siren_padding_invariance_and_neutral():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11, dtype=D)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    loss, h = em.siren_entropy_loss(logits, mask, 0.5)
    pad = torch.cat([logits, torch.randn(3, 4, 11, dtype=D)], dim=1)
    pmask = torch.cat([mask, torch.zeros(3, 4, dtype=mask.dtype)], dim=1)
    pad_rows = torch.cat([pad, torch.randn(2, 10, 11, dtype=D)])
    prow_mask = torch.cat([pmask, torch.zeros(2, 10, dtype=mask.dtype)])
    loss2, h2 = em.siren_entropy_loss(pad_rows, prow_mask, 0.5)
    close(h, h2, 1e-12)
    close(loss, loss2, 1e-12)
    zero, _ = em.siren_entropy_loss(logits, mask, 0.5, coef=0.0)
    assert zero.item() == 0.0


def test_siren_peak_mask_matches_row_loop():
    torch.manual_seed(1)
    e = torch.rand(4, 9, dtype=D)
    mask = torch.rand(4, 9) > 0.3
    got = em.siren_peak_mask(e, mask, quantile=0.8)
    for i in range(4):
        vals = e[i][mask[i]]
        if vals.numel() == 0:
            assert not got[i].any()
            continue
        s = vals.sort().values
        pos = 0.8 * (len(s) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(s) - 1)
        tau = s[lo] + (pos - lo) * (s[hi] - s[lo])
        assert got[i].tolist() == (mask[i] & (e[i] > tau)).tolist()


# ------------------------------------------------------------------------------------- STEER

STEER = dict(
    pi=[[.90, .30, .05], [.60, .10, .95]],
    pi_old=[[.85, .35, .05], [.62, .12, .95]],
    H=[[.40, 1.60, 2.50], [.90, 2.10, .25]],
    A=[[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]],
)


def _steer_args():
    return t(STEER["A"]), t(STEER["H"]), t(STEER["pi_old"]).log(), t(STEER["pi"]).log(), torch.ones(2, 3)


def test_steer_worked_example():
    adv, h, old, lp, mask = _steer_args()
    # (0,0): 1/.85 * .9 * .1 * (ln .9 + .4) = 0.0312
    close(em.steer_omega(adv, h, old, lp), [[0.0312, 0.2376, -0.4709], [-0.1506, 0.1519, -0.0099]])
    # k = -ln 0.8 / 0.4709 = 0.4738
    w = em.steer_token_weights(adv, h, old, lp, mask, weight_min=0.8, mapping="exp")
    close(w, [[0.9853, 0.8935, 0.8000], [0.9311, 0.9305, 0.9953]])
    wl = em.steer_token_weights(adv, h, old, lp, mask, weight_min=0.8, weight_max=1.2, mapping="linear")
    close(wl, [[1.1816, 1.0025, 0.8000], [1.0779, 1.0768, 1.2000]])


def test_steer_padding_and_neutral():
    adv, h, old, lp, mask = _steer_args()
    w = em.steer_token_weights(adv, h, old, lp, mask)
    pad = lambda x, v: torch.cat([x, torch.full((2, 3), v, dtype=x.dtype)], dim=1)  # noqa: E731
    # padded positions carry an extreme |Omega| candidate that must not set k
    wp = em.steer_token_weights(pad(adv, 5.0), pad(h, 9.0), pad(old, -9.0), pad(lp, -0.5),
                                pad(mask, 0.0))
    close(wp[:, :3], w, 1e-12)
    assert (wp[:, 3:] == 1).all()
    assert (em.steer_token_weights(adv, h, old, lp, mask, weight_min=1.0) == 1).all()
    assert (em.steer_token_weights(adv, h, old, lp, mask, weight_min=1.0, weight_max=1.0,
                                   mapping="linear") == 1).all()


# ------------------------------------------------------------------------------------- AEPO-T

def test_aepo_t_worked_example():
    z = t([2.0, 1.0, 0.5, 0.0, -1.0])
    close(token_entropy(z / 0.8), 1.0430)
    close(token_entropy(z), 1.2065)
    close(token_entropy(z / 1.2), 1.3118)
    assert em.aepo_t_temperature(0.42, 0.5) == 1.2
    assert em.aepo_t_temperature(0.6, 0.5) == 0.8
    rewards = t([1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0])
    groups = torch.arange(3).repeat_interleave(5)
    adv = grpo_advantages(rewards, groups)
    close(adv[:5], [0.730, -1.095, -1.095, 0.730, 0.730], 1e-3)
    close(adv[10:], [0.447] * 4 + [-1.789], 1e-3)
    keep = em.aepo_t_reinforce_rows(adv, below_target=True, threshold=0.05, max_rows=60)
    assert int(keep.sum()) == 7
    assert int(em.aepo_t_reinforce_rows(adv, below_target=False).sum()) == 3  # floor(7 / 2)
    assert int(em.aepo_t_reinforce_rows(adv, below_target=True, max_rows=4).sum()) == 4
    assert int(em.aepo_t_reinforce_rows(adv, below_target=True, max_rows=0).sum()) == 0  # neutral


def test_aepo_t_state_and_behaviour_logprobs():
    lp = torch.log(t([[0.5, 0.25, 1.0]]))
    close(em.aepo_t_entropy_estimate(lp, torch.tensor([[1, 1, 0]])), -(math.log(0.5) + math.log(0.25)) / 2)
    logits = torch.randn(2, 3, 7, dtype=D)
    tok = torch.randint(0, 7, (2, 3))
    close(em.behaviour_logprobs(logits, tok, 1.3, at_unit_temperature=True),
          em.behaviour_logprobs(logits, tok, 1.0), 1e-12)
    per_tok = torch.full((2, 3), 1.3, dtype=D)
    close(em.behaviour_logprobs(logits, tok, per_tok),
          torch.log_softmax(logits / 1.3, -1).gather(-1, tok[..., None])[..., 0], 1e-12)


# ------------------------------------------------------------------------------------- AEPO-A

def test_aepo_a_rollout_worked_example():
    # m = 8 sigma(0.5 (1.2 - 1.4)) = 3.8002 -> int + 1 = 4
    close(8 / (1 + math.exp(0.1)), 3.8002)
    assert em.aepo_a_global_samples(8, 1.2, (0.9 + 1.5 + 1.8) / 3) == 4
    p = em.aepo_a_branch_probability(0.55, 0.3, torch.tensor([0, 1, 2, 4]))
    close(p, [0.7000, 0.6650, 0.6300, 0.5600])
    n = em.aepo_a_branch_count(0.55, 0.3, torch.tensor([0, 1, 2, 4]), 3, beam_size=2)
    assert n.tolist() == [1, 1, 1, 1]
    assert em.aepo_a_branch_count(0.1, 0.0, 0, 3).item() == 0
    assert em.aepo_a_branch_count(0.9, 0.3, 0, 1, beam_size=4).item() == 1  # budget bound
    assert em.aepo_a_branch_count(0.9, 0.3, 0, 0).item() == 0


def test_aepo_a_policy_loss_worked_example():
    H = t([[0.2, 1.5, 0.6], [2.4, 0.3, 0.9]])
    A = t([[1.0] * 3, [-1.0] * 3])
    r = t([[1.35, 1.35, 1.05], [1.35, 0.70, 0.95]])
    old = torch.zeros(2, 3, dtype=D)
    logp = r.log().requires_grad_(True)
    mask = torch.ones(2, 3)
    hn = em.aepo_a_normalized_entropy(H, mask)
    close(hn, [[-0.9351, 0.6168, -0.4576], [1.6912, -0.8158, -0.0995]])
    close(em.aepo_a_advantages(A, hn), [[0.8130, 1.1234, 0.9085], [-1.3382, -0.8368, -0.9801]])
    loss = em.aepo_a_policy_loss(logp, old, A, H, mask, alpha=0.2, clip_low=0.2, clip_high=0.28,
                                 dual_clip_c=3.0)
    close(loss, [[-1.0406, -1.4379, -0.9539], [1.8066, 0.6695, 0.9311]])
    loss.sum().backward()
    close(logp.grad, [[0, -1.4379, -0.9539], [1.8066, 0, 0.9311]])


def test_aepo_a_neutral_is_ppo_clip():
    torch.manual_seed(2)
    logp = (torch.randn(3, 5, dtype=D) * 0.3).requires_grad_(True)
    old = torch.randn(3, 5, dtype=D) * 0.3
    adv, h = torch.randn(3, 5, dtype=D), torch.rand(3, 5, dtype=D) * 3
    mask = torch.ones(3, 5)
    a = em.aepo_a_policy_loss(logp, old, adv, h, mask, alpha=0.0, high_entropy_stop_gradient=False)
    b = ppo_clip_loss(logp, old, adv, clip_low=0.2, clip_high=0.28, dual_clip_c=3.0)
    close(a, b, 1e-12)
    ga, = torch.autograd.grad(a.sum(), logp)
    gb, = torch.autograd.grad(b.sum(), logp)
    close(ga, gb, 1e-12)


def test_aepo_a_padding_invariance():
    H = t([[0.2, 1.5, 0.6], [2.4, 0.3, 0.9]])
    mask = torch.ones(2, 3)
    hp = torch.cat([H, torch.full((2, 2), 7.0, dtype=D)], 1)
    mp = torch.cat([mask, torch.zeros(2, 2)], 1)
    close(em.aepo_a_normalized_entropy(hp, mp)[:, :3], em.aepo_a_normalized_entropy(H, mask), 1e-12)


def test_aepo_a_step_entropy():
    lp = torch.log(t([[0.5, 0.5], [0.5, 0.5]]))
    close(em.aepo_a_step_entropy(lp, 4), math.log(2) / math.log(4))
    close(em.aepo_a_step_entropy(lp, 4, reduce="sum"), 2 * math.log(2) / math.log(4))


# ------------------------------------------------------------------------------------- Lp-Reg

def test_lp_reg_worked_example():
    p = t([.60, .25, .10, .03, .015, .005])
    logits = p.log()
    proxy = em.lp_reg_proxy_logprobs(logits.expand(6, 6), torch.arange(6), kappa=0.1)
    close(proxy[:3].exp(), [.6316, .2632, .1053])
    assert (proxy[3:] < -1000).all()
    # token 2: pi = 0.10 < 0.1053 -> regularised; k3 = 1.0526 - ln 1.0526 - 1 = 0.001338
    logp = torch.log(t([[0.10, 0.03]])).requires_grad_(True)
    old = logp.detach().clone()
    prox = proxy[[2, 3]].unsqueeze(0)
    adv = t([[-0.8, -0.8]])
    loss = em.lp_reg_policy_loss(logp, old, prox, adv, torch.ones(1, 2), neg_fraction=1.0, beta=1.0)
    close(loss[0, 0], 0.8 + 0.001338, 1e-6)
    close(loss[0, 1], 0.8, 1e-9)  # filtered token: plain surrogate
    g, = torch.autograd.grad(loss[0, 0], logp)
    # d/dlogpi of (-A r) = 0.8, of k3 = 1 - 0.1053/0.1 = -0.0526
    close(g[0, 0], 0.8 - 0.0526)


def test_lp_reg_selection_small_batch():
    pi = t([[.5, .002, .3, .01, .9, .2]])
    logp = pi.log()
    adv = torch.full((1, 6), -1.0, dtype=D)
    mask = torch.ones(1, 6)
    proxy = torch.zeros(1, 6, dtype=D)  # the proxy would raise every token
    # rho = 1%: floor(0.06) = 0 -> released code does nothing; default takes the lowest one
    assert not em.lp_reg_select(logp, proxy, adv, mask, neg_fraction=0.01, released_gate=True).any()
    got = em.lp_reg_select(logp, proxy, adv, mask, neg_fraction=0.01)
    assert got.tolist() == [[False, True, False, False, False, False]]
    # rho = 50%: k = 3 -> pi = .002, .01, .2
    got = em.lp_reg_select(logp, proxy, adv, mask, neg_fraction=0.5, released_gate=True)
    assert got.tolist() == [[False, True, False, True, False, True]]
    # kept only if pi < pi_proxy
    proxy2 = logp.clone()
    proxy2[0, 3] = math.log(0.005)
    got = em.lp_reg_select(logp, proxy2 + 1e-3 * (torch.arange(6) != 3), adv, mask, neg_fraction=0.5)
    assert got.tolist() == [[False, True, False, False, False, True]]


def test_lp_reg_neutral_and_padding():
    torch.manual_seed(3)
    logp = torch.randn(2, 5, dtype=D) - 2
    old = logp + 0.1 * torch.randn(2, 5, dtype=D)
    adv = torch.randn(2, 5, dtype=D)
    proxy = logp + 0.5
    mask = torch.ones(2, 5)
    plain = ppo_clip_loss(logp, old, adv, clip_low=1.0, clip_high=9.0, dual_clip_c=None)
    close(em.lp_reg_policy_loss(logp, old, proxy, adv, mask, neg_fraction=0.0), plain, 1e-12)
    sel = em.lp_reg_select(logp, proxy, adv, mask, neg_fraction=0.3)
    pad = lambda x, v: torch.cat([x, torch.full((2, 3), v, dtype=x.dtype)], 1)  # noqa: E731
    selp = em.lp_reg_select(pad(logp, -50.0), pad(proxy, 0.0), pad(adv, -1.0), pad(mask, 0.0),
                            neg_fraction=0.3)
    assert selp[:, :5].tolist() == sel.tolist() and not selp[:, 5:].any()


# ------------------------------------------------------------------------------------- CANON

CANON_R = [1, 0, 1, 1, 0, 0, 1, 0]
CANON_H = [.9, .7, .5, 1.1, .3, .4, .8, .6]


@pytest.mark.parametrize("mu,expected", [
    (1.0, [0.75, -0.25, 0.25, 0.75, -0.75, -0.75, 0.75, -0.75]),
    (0.5, [0.5, -0.5, 0.5, 0.5, -0.5, -0.5, 0.5, -0.5]),
    (0.0, [0.25, -0.75, 0.75, 0.25, -0.25, -0.25, 0.25, -0.25]),
])
def test_canon_worked_example(mu, expected):
    a = em.canon_advantages(t(CANON_R), t(CANON_H), torch.zeros(8, dtype=torch.long), mu=mu, alpha=1.0)
    close(a, expected, 1e-12)


def _canon_loop(scores, metric, groups, mu, alpha):
    out = torch.zeros_like(scores)
    for g in groups.unique():
        idx = (groups == g).nonzero().squeeze(-1)
        order = idx[torch.argsort(metric[idx], stable=True)]
        n = len(order)
        low, high = order[: n // 2], order[n // 2:]
        rl = scores[low].mean() if len(low) else 0.0
        rh = scores[high].mean() if len(high) else 0.0
        for i in high:
            out[i] = mu * (scores[i] - alpha * rl) + (1 - mu) * (scores[i] - rh)
        for i in low:
            out[i] = mu * (alpha * scores[i] - rh) + (1 - mu) * (scores[i] - rl)
    return out


def test_canon_loop_vs_vectorised_and_neutral():
    torch.manual_seed(4)
    groups = torch.tensor([3, 1, 3, 7, 1, 3, 7, 7, 7, 1, 9, 3, 3])
    scores = torch.randint(0, 2, (13,)).to(D)
    metric = torch.rand(13, dtype=D)
    for mu, alpha in [(1.0, 1.0), (0.3, 0.7), (0.0, 1.5)]:
        close(em.canon_advantages(scores, metric, groups, mu=mu, alpha=alpha),
              _canon_loop(scores, metric, groups, mu, alpha), 1e-12)
    # mu = 1/2, alpha = 1 is R - (R- + R+) / 2, the group mean only when the halves are equal (even n)
    multi = groups == 7
    drgrpo = grpo_advantages(scores[multi], groups[multi], norm_by_std=False)
    close(em.canon_advantages(scores, metric, groups, mu=0.5)[multi], drgrpo, 1e-12)
    close(em.canon_advantages(scores, metric, groups, normalizer=8.0),
          em.canon_advantages(scores, metric, groups) / 8, 1e-12)


# ------------------------------------------------------------------------------------- HAPO

HAPO_H = [0.05, 0.3, 1.2, 2.0, 0.8, 0.02]
HAPO_R = [1.00, 1.15, 0.95, 1.02, 0.85, 1.00]


def test_hapo_token_group_average_worked_example():
    a = em.hapo_token_group_advantages(t([1.0, 0.0]), torch.tensor([3, 1]), torch.zeros(2, dtype=torch.long))
    # mu = 3/4, sigma = sqrt((3 * 1/16 + 9/16) / 4) = 0.4330
    close(a, [0.5773, -1.7320])
    close(grpo_advantages(t([1.0, 0.0]), torch.zeros(2, dtype=torch.long)), [0.7071, -0.7071])


@pytest.mark.parametrize("legacy,h_hat,el,eh,adv,temp", [
    (False, [-0.7762, -0.3386, 0, 1, -0.0990, -1], [.3552, .2677, .2, .2, .2198, .4], [.2] * 3 + [.4, .2, .2],
     [0.2238, 1, 1, 1, 1, 0], [0.9612, 0.9831, 1, 1.05, 0.995, 0.95]),
    (True, [0.7762, 0.3386, 0, 1, 0.0990, 1], [.2] * 6, [.3552, .2677, .2, .4, .2198, .4],
     [1, 1.3386, 1, 1, 1.0990, 1], [1.0388, 1.0169, 1, 1.05, 1.005, 1.05]),
])
def test_hapo_worked_example(legacy, h_hat, el, eh, adv, temp):
    H = t(HAPO_H)
    mask = torch.ones(6)
    st = em.hapo_entropy_stats(H, mask, pivot=0.8)
    close(st.pivot, math.log(1.2))
    close((torch.log(H) - st.pivot) / st.scale, [-1.4403, -0.6283, 0, 0.2315, -0.1838, -1.8556])
    hh = em.hapo_normalized_entropy(H, st, legacy_sign=legacy)
    close(hh, h_hat)
    lo, hi = em.hapo_clip_ranges(hh, clip_low=0.2, clip_high=0.2, alpha=1.0)
    close(lo, el)
    close(hi, eh)
    close(em.hapo_redistribute(torch.ones(6, dtype=D), hh, t(HAPO_R), lo, hi, beta=1.0), adv)
    close(em.hapo_temperature(hh, t0=1.0, tau=0.05), temp)


def test_hapo_neutral_padding_and_fallback():
    torch.manual_seed(5)
    logp = (torch.randn(2, 4, dtype=D) * 0.3).requires_grad_(True)
    old = torch.randn(2, 4, dtype=D) * 0.3
    adv = torch.randn(2, 4, dtype=D)
    hh = torch.rand(2, 4, dtype=D) * 2 - 1
    close(em.hapo_policy_loss(logp, old, adv, hh, alpha=0.0, beta=0.0),
          ppo_clip_loss(logp, old, adv, clip_low=0.2, clip_high=0.2, dual_clip_c=10.0), 1e-12)
    assert (em.hapo_temperature(hh, tau=0.0) == 1).all()
    H = t(HAPO_H)
    st = em.hapo_entropy_stats(torch.cat([H, t([50.0, 1e-6])]), torch.tensor([1] * 6 + [0, 0]))
    assert st == em.hapo_entropy_stats(H, torch.ones(6))
    s, g = t([1.0, 0.0, 1.0, 0.0]), torch.tensor([0, 0, 1, 1])
    close(em.hapo_token_group_advantages(s, torch.ones(4), g, norm_by_std=False, fallback_abs=None),
          grpo_advantages(s, g, norm_by_std=False), 1e-12)
    # fallback: lengths (99, 1) give |A| = 9.95 >= 5 -> GRPO advantage for the group
    a = em.hapo_token_group_advantages(t([1.0, 0.0]), torch.tensor([1, 99]), torch.zeros(2, dtype=torch.long))
    close(a, grpo_advantages(t([1.0, 0.0]), torch.zeros(2, dtype=torch.long)), 1e-12)


def test_hapo_group_loop_vs_vectorised():
    torch.manual_seed(6)
    g = torch.tensor([2, 0, 2, 2, 0, 5, 5])
    s = torch.rand(7, dtype=D)
    L = torch.randint(1, 20, (7,))
    got = em.hapo_token_group_advantages(s, L, g, fallback_abs=None)
    for k in g.unique():
        i = g == k
        rep = torch.repeat_interleave(s[i], L[i])
        close(got[i], (s[i] - rep.mean()) / (rep.std(unbiased=False) + 1e-6), 1e-9)


# ------------------------------------------------------------------------------------- ARES

def test_ares_reward_worked_example():
    rows = [(0, 1, 20, -0.5000), (0, 1, 11, 0.0), (0, 0, 20, 0.2958), (1, 1, 4, -0.1818),
            (2, 1, 12, 0.5173), (2, 1, 2, -0.1000), (2, 0, 3, 0.3000)]
    b = torch.tensor([r[0] for r in rows])
    c = torch.tensor([bool(r[1]) for r in rows])
    n = t([r[2] for r in rows])
    score = em.ares_entropy_reward(n, torch.full((7,), 10.0, dtype=D), b, c, torch.full((7,), 0.5, dtype=D))
    close(score, [r[3] for r in rows])
    close(c.to(D) + score, [0.5, 1.0, 0.2958, 0.8182, 1.5173, 0.9, 0.3])
    zero = em.ares_entropy_reward(n, torch.full((7,), 10.0, dtype=D), b, c, torch.zeros(7, dtype=D))
    assert (zero == 0).all()


def test_ares_window_and_count():
    e = t([[0.1, 2.0, 1.8, 2.2, 1.9, 0.5, 0.0, 0.0]])
    m = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])
    w = em.ares_window_entropy(e, m, window=4)
    close(w[0, 0], 1.975)
    close(w[0, 4], 0.5)  # only one response token follows
    assert w[0, 5] == 0
    trig = torch.tensor([[1, 0, 0, 0, 1, 0, 1, 0]])
    assert em.ares_hwe_count(w, trig, m, 1.9).item() == 1
    assert em.ares_hwe_count(w, trig, m, 2.0).item() == 0
    assert em.ares_difficulty_bucket(t([1.0, 0.7, 0.5, 1 / 3, 0.2])).tolist() == [0, 0, 1, 1, 2]
    lp = torch.log(t([[0.5, 0.25]]))
    close(em.ares_topk_entropy(lp), 0.5 * math.log(2) + 0.25 * math.log(4) + 0.25 * math.log(4))


def test_ares_alpha_update_intent_vs_released():
    alpha = torch.full((3,), 0.5, dtype=D)
    prev = t([10.0, 10.0, 10.0])
    mean = t([12.3, 9.0, 14.0])
    a_int, tgt = em.ares_alpha_update(alpha, prev, mean)
    close(a_int, [0.5 + 0.05 * 2.3, 0.5 - 0.05, 0.5 - 0.05 * 4])
    close(tgt, [12.0, 9.0, 14.0])
    a_rel, _ = em.ares_alpha_update(alpha, prev, mean, as_released=True)
    close(a_rel, [0.5 + 0.05 * 0.3, 0.5, 0.5])  # only the rounding residual moves alpha


def test_ares_kl_controller():
    s = em.AresKLState()
    for _ in range(99):
        s = em.ares_kl_update(s, (0.02, 0.01, None))
    assert s.log_beta == (0.0, 0.0, 0.0) and s.updates == 99
    s = em.ares_kl_update(s, (0.02, 0.01, None))
    assert s.log_beta[0] > 0 and s.log_beta[2] == 0.0
    assert s.kl_ema[2] == 0.0
    # KL below target lowers beta
    s2 = em.AresKLState(kl_ema=(0.0, 0.0, 0.0), updates=99)
    s2 = em.ares_kl_update(s2, (0.001, None, None))
    assert s2.log_beta[0] < 0
    close(em.ares_threshold_update(1.0, 2.0), 1.01)


# ------------------------------------------------------------------------------------- configs

def test_method_configs_defaults_checks_and_neutral():
    from agentropy.configs import methods as cm
    from agentropy.configs.schema import ConfigError

    classes = [cm.SirenConfig, cm.SteerConfig, cm.AepoTConfig, cm.AepoAConfig, cm.LpRegConfig,
               cm.CanonConfig, cm.HapoConfig, cm.AresConfig]
    for cls in classes:
        cls()
        cm.neutral(cls)
    for cls, bad in [(cm.SirenConfig, {"top_p": 0.0}), (cm.SteerConfig, {"weight_min": 1.5}),
                     (cm.AepoTConfig, {"t_low": 1.5}), (cm.AepoAConfig, {"beam_size": 0}),
                     (cm.LpRegConfig, {"mode": "minp"}), (cm.CanonConfig, {"mu": 2.0}),
                     (cm.HapoConfig, {"tau": -0.1}), (cm.AresConfig, {"kl_every": 0})]:
        with pytest.raises(ConfigError):
            cls(**bad)
    # the neutral settings reduce the methods to their base quantities
    adv, h, old, lp, mask = _steer_args()
    s = cm.neutral(cm.SteerConfig)
    assert (em.steer_token_weights(adv, h, old, lp, mask, weight_min=s.weight_min, weight_max=s.weight_max,
                                   mapping=s.mapping) == 1).all()
    c = cm.neutral(cm.CanonConfig)
    a = em.canon_advantages(t(CANON_R), t(CANON_H), torch.zeros(8, dtype=torch.long), mu=c.mu, alpha=c.alpha)
    close(a, t(CANON_R) - 0.5, 1e-12)
    r = cm.neutral(cm.AresConfig)
    assert (em.ares_entropy_reward(t([3.0, 30.0]), t([10.0, 10.0]), torch.tensor([0, 2]),
                                   torch.tensor([False, True]), t([r.alpha_init] * 2)) == 0).all()


def test_response_units():
    x = t([[1.0, 2.0, 9.0], [3.0, 9.0, 9.0], [5.0, 7.0, 9.0]])
    m = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 0]])
    close(em.response_mean(x, m), [1.5, 3.0, 6.0], 1e-12)
    close(em.response_mean(x, m, torch.tensor([4, 4, 2])), [2.0, 2.0, 6.0], 1e-12)  # (1 + 2 + 3) / 3
    assert em.response_length(m, torch.tensor([4, 4, 2])).tolist() == [3.0, 3.0, 2.0]


def test_siren_mixed_short_and_long_rows_are_independent():
    # a micro-batch mixing a 3-token turn with a 500-token turn: each row's selection is its own
    torch.manual_seed(7)
    logits = torch.randn(2, 500, 13, dtype=D)
    mask = torch.zeros(2, 500)
    mask[0, :3] = 1
    mask[1] = 1
    _, h = em.siren_entropy_loss(logits, mask, 0.0)
    _, h0 = em.siren_entropy_loss(logits[:1, :3], mask[:1, :3], 0.0)
    _, h1 = em.siren_entropy_loss(logits[1:], mask[1:], 0.0)
    close(h, (h0 + h1) / 2, 1e-12)


def test_float32_in_float32_out():
    torch.manual_seed(8)
    f = torch.float32
    logits = torch.randn(2, 4, 9, dtype=f)
    tok = torch.randint(0, 9, (2, 4))
    mask = torch.ones(2, 4)
    lp = torch.log_softmax(logits, -1).gather(-1, tok[..., None])[..., 0]
    adv = torch.randn(2, 4, dtype=f)
    h = token_entropy(logits)
    assert em.siren_entropy_loss(logits, mask, 0.3)[0].dtype == f
    assert em.steer_token_weights(adv, h, lp, lp, mask).dtype == f
    assert em.aepo_a_policy_loss(lp, lp, adv, h, mask).dtype == f
    proxy = em.lp_reg_proxy_logprobs(logits, tok)
    assert proxy.dtype == f and em.lp_reg_policy_loss(lp, lp, proxy, adv, mask).dtype == f
    hh = em.hapo_normalized_entropy(h, em.hapo_entropy_stats(h, mask))
    assert hh.dtype == f and em.hapo_policy_loss(lp, lp, adv, hh).dtype == f
    assert em.behaviour_logprobs(logits, tok, 1.2).dtype == f
