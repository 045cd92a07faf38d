"""agentropy's Gymnasium text environments.

Importing this package registers every ``agentropy/<Name>-v0`` id; the engines themselves are
imported only when an env is made. Turn limits (``max_episode_steps``) follow the published
multi-turn setups (docs/algorithms.md section 0) and can be changed per ``gymnasium.make`` call.
"""

from gymnasium.envs.registration import register, registry

__all__ = ["ENV_IDS", "env_class"]

_SPECS = {
    "agentropy/TWX-v0": ("agentropy.envs.twx:TWXEnv", 50),
    "agentropy/WebShop-v0": ("agentropy.envs.webshop.env:ShopEnv", 15),
    "agentropy/ALFWorld-v0": ("agentropy.envs.alfworld.env:ALFWorldEnv", 50),
    "agentropy/TextWorld-v0": ("agentropy.envs.textworld:TextWorldEnv", 50),
    "agentropy/ScienceWorld-v0": ("agentropy.envs.scienceworld:ScienceWorldEnv", 30),
}

for _id, (_entry_point, _max_steps) in _SPECS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry_point, max_episode_steps=_max_steps)

#: Every id this package registers.
ENV_IDS: tuple[str, ...] = tuple(_SPECS)


def env_class(env_id: str) -> type:
    """The class behind a registered id, without making an env (no engine starts).

    Useful for class-level facts such as ``family``, ``splits`` and ``engine_packages``.
    """
    import importlib

    from gymnasium.envs.registration import spec

    entry = spec(env_id).entry_point
    if not isinstance(entry, str):
        return entry
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)
