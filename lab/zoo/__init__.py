"""The architecture zoo: classic token mixers as self-contained layer programs (see registry.py)."""
from lab.zoo.registry import ZOO, ZooMember, zoo_names, zoo_source

__all__ = ["ZOO", "ZooMember", "zoo_names", "zoo_source"]
