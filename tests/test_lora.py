"""LoRA (``agent.lora.*``, agents/lora.py): merging is exact, the HF backend generates with the
adapted weights, and ``agentropy train`` with ``agent.lora.rank=8`` trains only adapters for
GRPO and SPEAR, checkpoints the adapter and exports a plain merged model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from agentropy.agents.backends.base import SamplingParams
from agentropy.agents.backends.hf import HFBackend
from agentropy.agents.lora import (
    adapter_state_dict,
    apply_lora,
    load_adapter_state_dict,
    merged_state_dict,
    save_merged,
    trainable_parameters,
)
from agentropy.agents.tiny import load_pretrained
from agentropy.configs.schema import ConfigError, LoRAConfig

from tests.agents.helpers import chat_prompts, teacher_forced
from tests.test_train import SMALL, _train

LORA = LoRAConfig(rank=8, alpha=16.0)


def _adapted(model_dir, seed=0):
    """The tiny model with adapters whose B is random (a fresh adapter computes the base)."""
    model, tokenizer = load_pretrained(model_dir)
    model = apply_lora(model, LORA)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval(), tokenizer


def test_config_checks():
    assert not LoRAConfig().enabled
    with pytest.raises(ConfigError, match="agent.lora.dropout"):
        LoRAConfig(rank=8, dropout=1.0)
    with pytest.raises(ConfigError, match="agent.lora.rank"):
        LoRAConfig(rank=-1)


def test_only_adapters_train_and_the_merge_is_exact(tiny_model_dir, tmp_path):
    base, _ = load_pretrained(tiny_model_dir)
    fresh = apply_lora(load_pretrained(tiny_model_dir)[0], LORA)
    n_train, n_all = trainable_parameters(fresh)
    assert 0 < n_train < 0.2 * n_all
    assert all(("lora_" in n) == p.requires_grad for n, p in fresh.named_parameters())
    # A fresh adapter changes nothing.
    plain = base.state_dict()
    merged = merged_state_dict(fresh)
    assert merged.keys() == plain.keys()
    assert all(torch.equal(merged[k], plain[k]) for k in plain)
    with pytest.raises(ValueError, match="target_modules"):
        apply_lora(load_pretrained(tiny_model_dir)[0], LoRAConfig(rank=4, target_modules=["nope"]))

    model, tokenizer = _adapted(tiny_model_dir)
    ids = torch.tensor([chat_prompts(tokenizer)[0]])
    with torch.no_grad():
        adapted_logits = model(input_ids=ids).logits
        assert not torch.allclose(adapted_logits, base(input_ids=ids).logits, atol=1e-3)
    # The export is a plain folder: from_pretrained without peft gives the adapted logits.
    out = save_merged(model, tokenizer, tmp_path / "merged")
    assert not (out / "adapter_config.json").exists()
    exported, _ = load_pretrained(out)
    assert type(exported).__name__ == "Qwen2ForCausalLM"
    with torch.no_grad():
        assert torch.allclose(exported(input_ids=ids).logits, adapted_logits, atol=1e-5)
    # The adapter state round-trips into a fresh wrapper.
    state = adapter_state_dict(model)
    assert state and all("lora_" in k for k in state)
    other = apply_lora(load_pretrained(tiny_model_dir)[0], LORA).eval()
    load_adapter_state_dict(other, state)
    with torch.no_grad():
        assert torch.allclose(other(input_ids=ids).logits, adapted_logits, atol=1e-6)


def test_hf_backend_generates_with_the_adapted_weights(tiny_model_dir):
    model, tokenizer = _adapted(tiny_model_dir)
    plain, _ = load_pretrained(tiny_model_dir)
    plain.load_state_dict(merged_state_dict(model))
    base, _ = load_pretrained(tiny_model_dir)
    prompts = chat_prompts(tokenizer)
    gens = HFBackend(model, tokenizer).generate(prompts, SamplingParams(16, 1.0, 1.0, seed=3))
    for prompt, gen in zip(prompts, gens, strict=True):
        lp = torch.tensor(gen.logprobs)
        assert torch.allclose(lp, teacher_forced(plain, prompt, gen, 1.0)[0], atol=1e-4)
        assert not torch.allclose(lp, teacher_forced(base, prompt, gen, 1.0)[0], atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "spear"])
def test_two_rl_iterations_train_adapters_only(tmp_path, algorithm):
    from agentropy.algorithms.checkpoint import latest_checkpoint
    from safetensors.torch import load_file

    run = tmp_path / "run"
    proc = _train(run, f"algorithm={algorithm}", "agent.lora.rank=8", "algorithm.lr=5e-3")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    ckpt = latest_checkpoint(run)
    assert ckpt.name == "iter_000002" and json.loads((ckpt / "meta.json").read_text())["lora"]
    adapter = load_file(ckpt / "model.safetensors")
    assert adapter and all("lora_A" in k or "lora_B" in k for k in adapter)
    assert any(float(v.abs().max()) > 0 for k, v in adapter.items() if "lora_B" in k)  # it trained

    # The export loads as a plain model; only the adapted layers' weights moved.
    base, _ = load_pretrained(run / "model")
    final, _ = load_pretrained(run / "final_model")
    b, f = base.state_dict(), final.state_dict()
    assert b.keys() == f.keys()
    changed = {k for k in b if not torch.equal(b[k], f[k])}
    assert changed and all(k.endswith("_proj.weight") and k.split(".")[-2] in LORA.target_modules
                           for k in changed), sorted(changed)[:5]
    assert any("lm_head" in k for k in b) and not any("lm_head" in k or "embed" in k or "norm" in k
                                                      for k in changed)

    # agentropy export-model of the last checkpoint (adapters only) merges them as the run did
    from agentropy.cli import main

    assert main(["export-model", str(run), str(tmp_path / "exported"), "--dtype", "float32"]) == 0
    exported = load_pretrained(tmp_path / "exported")[0].state_dict()
    assert exported.keys() == f.keys() and all(torch.equal(exported[k], f[k]) for k in f)


@pytest.mark.slow
def test_rollout_logprobs_are_the_trained_models(tmp_path):
    """After a LoRA run the trainer's rollout backend samples from the trained policy: its
    log-probabilities equal a forward pass of the exported (merged) model, not of the base."""
    from agentropy.algorithms.train import Trainer
    from agentropy.configs.compose import load_config

    cfg = load_config([*SMALL, "agent.lora.rank=8", "algorithm.lr=5e-3", "tensorboard=false"])
    trainer = Trainer(cfg, tmp_path / "run")
    try:
        trainer.run()
        prompts = chat_prompts(trainer.tokenizer)
        gens = trainer.agent.backend.generate(prompts, SamplingParams(12, 1.0, 1.0, seed=5))
    finally:
        trainer.close()
    final, _ = load_pretrained(Path(tmp_path / "run" / "final_model"))
    base, _ = load_pretrained(Path(tmp_path / "run" / "model"))
    for prompt, gen in zip(prompts, gens, strict=True):
        lp = torch.tensor(gen.logprobs)
        assert torch.allclose(lp, teacher_forced(final, prompt, gen, 1.0)[0], atol=1e-4)
        assert not torch.allclose(lp, teacher_forced(base, prompt, gen, 1.0)[0], atol=1e-3)


@pytest.mark.vllm
def test_vllm_engine_generates_with_the_merged_adapters(tiny_model_dir):
    """A backend with its own engine takes the merged weights (what the trainer pushes)."""
    from agentropy.agents.backends.vllm import VLLMBackend

    model, tokenizer = _adapted(tiny_model_dir)
    base, _ = load_pretrained(tiny_model_dir)
    engine = VLLMBackend(tiny_model_dir, in_process=True, max_model_len=1024)
    try:
        engine.update_weights(merged_state_dict(model))
        prompts = chat_prompts(tokenizer)
        gens = engine.generate(prompts, SamplingParams(16, 1.0, 1.0, seed=3))
    finally:
        engine.close()
    for prompt, gen in zip(prompts, gens, strict=True):
        lp = torch.tensor(gen.logprobs)
        assert torch.allclose(lp, teacher_forced(model, prompt, gen, 1.0)[0], atol=1e-4)
        assert not torch.allclose(lp, teacher_forced(base, prompt, gen, 1.0)[0], atol=1e-3)


@pytest.mark.slow
def test_resume_restores_the_adapter(tmp_path):
    """A LoRA run resumed from its checkpoint continues with the saved adapter (the export of
    the resumed run equals the first one's), and resuming it without agent.lora is refused."""
    from agentropy.algorithms.train import train
    from agentropy.configs.compose import load_config

    run = tmp_path / "run"
    small = [*SMALL, "iterations=1", "eval.episodes=1", "tensorboard=false", "algorithm.lr=5e-3"]
    train(load_config([*small, "agent.lora.rank=8"]), run)
    first = load_pretrained(run / "final_model")[0].state_dict()
    (run / "final_model" / "model.safetensors").unlink()
    train(load_config([*small, "agent.lora.rank=8", f"resume={run}"]), run)
    again = load_pretrained(run / "final_model")[0].state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    with pytest.raises(ConfigError, match="agent.lora"):
        train(load_config([*small, f"resume={run}"]), run)
