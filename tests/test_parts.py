"""The catalogue of part names (agentropy.configs.parts) and the registries agree both ways, and
the config layer checks names without importing the math."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agentropy.configs.parts import CATALOGUE, Registry


def _registries() -> dict[str, Registry]:
    from agentropy.agents.backends import BACKENDS
    from agentropy.algorithms import registry

    found = {r.kind: r for r in vars(registry).values() if isinstance(r, Registry)}
    found[BACKENDS.kind] = BACKENDS
    return found


def test_every_catalogue_kind_has_one_registry():
    assert sorted(_registries()) == sorted(CATALOGUE)


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_catalogue_equals_registered_names(kind):
    reg = _registries()[kind]
    reg.load_all()
    assert reg.registered() == sorted(CATALOGUE[kind])
    for name in CATALOGUE[kind]:
        assert reg.get(name) is not None


def test_an_undeclared_name_cannot_be_registered():
    reg = Registry.of("policy loss")
    with pytest.raises(ValueError, match="not declared"):
        reg.register("my_loss")


def test_get_imports_the_declaring_module_lazily():
    reg = Registry.of("advantage estimator")
    with pytest.raises(KeyError, match="unknown advantage estimator 'nope'"):
        reg.get("nope")


def test_config_checks_names_without_importing_torch():
    code = ("import sys; from agentropy.configs.schema import AlgorithmConfig, ConfigError\n"
            "AlgorithmConfig(advantage='gigpo', aggregation='token-mean', lr_schedule='cosine')\n"
            "try:\n    AlgorithmConfig(advantage='rloo')\nexcept ConfigError as e:\n    print(e)\n"
            "print('torch' in sys.modules, 'agentropy.algorithms.advantages' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "algorithm.advantage: unknown advantage estimator 'rloo'" in out
    assert out.strip().endswith("False False")


def test_the_learner_update_path_names_no_feature():
    # The update path calls its parts uniformly: no branch (or any mention) of a part, a method
    # or a feature flag in the code of update, the old-policy pass, the optimizer step, backward.
    import ast
    import inspect
    import re
    import textwrap

    from agentropy.algorithms.learner import Learner

    feature = re.compile(r"\b(replay|critic|value_head|epo|entropy_term|ref_model|ref_logprobs|kl|"
                         r"enabled|spear|ppo|grpo|gigpo|empg|dapo|drbot)\b", re.IGNORECASE)
    for name in ("update", "_finish", "_old_policy_pass", "_optimizer_step", "backward"):
        tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(Learner, name))))
        body = tree.body[0].body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        code = "\n".join(ast.unparse(node) for node in body)
        code = re.sub(r"f?'[^']*'|f?\"[^\"]*\"", "''", code)  # metric names are data, not branches
        assert not feature.findall(code), (name, sorted(set(feature.findall(code))))
