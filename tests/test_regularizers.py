"""The learner's stateful loss terms: EPO's regulariser (history, hinge, beta_k, gradient) and the
KL controller, with numbers worked by hand."""

from __future__ import annotations

import pytest
import torch
from agentropy.algorithms.epo import NESTED, EPORegularizer
from agentropy.algorithms.regularizers import EntropyBonus, KLController
from agentropy.configs.schema import EPOConfig, KLConfig


def test_plain_entropy_bonus():
    bonus = EntropyBonus(0.001)
    assert bonus.aggregation is None  # the policy loss's mode
    assert bonus.per_token(torch.tensor([2.0]), step=5).item() == pytest.approx(-0.002)


def test_epo_regulariser_history_hinge_and_gradient():
    epo = EPORegularizer(EPOConfig(enabled=True, alpha=0.1, kappa_l=0.0, kappa_r=2.0, gamma=3.0),
                         coef=0.001, total_steps=10)
    assert epo.aggregation == NESTED
    # No history at the first step: only the entropy bonus, -lambda H.
    h = torch.tensor([3.0, 5.0], requires_grad=True)
    assert epo.per_token(h, step=0).tolist() == pytest.approx([-0.003, -0.005])
    # History: cumulative mean of batch entropies 1 and 3 -> 2; corridor upper bound 2 x 2 = 4.
    epo.observe(1.0)
    epo.observe(3.0)
    assert epo.hist_mean == 2.0
    # Step 0 of 10: beta = 1 + e^0 = 2. H = 3: inside, P = 0 -> -0.001 x 3 = -0.003.
    # H = 5: above, P = 1 -> -0.001 x (5 - 2 x 0.1 x 1) = -0.0048.
    out = epo.per_token(h, step=0)
    assert out.tolist() == pytest.approx([-0.003, -0.0048])
    # Gradient: inside -lambda = -0.001; above -lambda (1 - beta alpha) = -0.001 x 0.8 = -0.0008:
    # the hinge weakens the push towards more entropy above the corridor.
    out.sum().backward()
    assert h.grad.tolist() == pytest.approx([-0.001, -0.0008])
    # beta decays: step 5 of 10 -> 1 + e^-3.
    assert epo.metrics(5) == pytest.approx({"epo/hist_entropy": 2.0, "epo/beta": 1.049787}, abs=1e-6)
    again = EPORegularizer(epo.cfg, 0.001, 10)
    again.load_state_dict(epo.state_dict())
    assert again.hist_mean == 2.0


def test_kl_controller_fixed_and_adaptive():
    fixed = KLController(KLConfig(coef=0.01))
    fixed.update(5.0, 100)
    assert fixed.coef == 0.01
    # target 0.1, observed 0.2: error min(0.2 / 0.1 - 1, 0.2) = 0.2; 10 rows / horizon 100:
    # coef x (1 + 0.2 x 0.1) = 0.0102.
    adaptive = KLController(KLConfig(coef=0.01, target=0.1, horizon=100))
    adaptive.update(0.2, 10)
    assert adaptive.coef == pytest.approx(0.0102)
    restored = KLController(KLConfig(coef=0.5))
    restored.load_state_dict(adaptive.state_dict())
    assert restored.coef == pytest.approx(0.0102)
