"""Reinforcement learning: MDP validation (`mdp`). Every public name of the module is importable from here; it is
imported on the first use of one of its names (see `core.lazy_exports`)."""
from nasrec_lit.core import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, ["mdp"])
