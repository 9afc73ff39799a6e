"""Classes named as users name them: an index or the data set's name for it ("sneaker")."""
from __future__ import annotations

from ..errors import ConfigError


def class_index(cls: int | str, num_classes: int, class_names: list[str], owner: str = "this run") -> int:
    """A class by index or by name (in any case), checked against the `num_classes` the model
    was trained on (`owner` names the model in errors)."""
    if not num_classes:
        raise ConfigError(f"{owner} is not class-conditional: give no class")
    if isinstance(cls, str) and not cls.strip().lstrip("-").isdigit():
        folded = [name.casefold() for name in class_names]   # "sneaker" is "Sneaker"
        if cls.strip().casefold() not in folded:
            raise ConfigError(f"class {cls!r} is not one {owner} knows: {', '.join(class_names)}")
        return folded.index(cls.strip().casefold())
    index = int(cls)
    if not 0 <= index < num_classes:
        known = f" ({', '.join(class_names)})" if class_names else ""
        raise ConfigError(f"class {index} is outside 0..{num_classes - 1}{known}")
    return index
