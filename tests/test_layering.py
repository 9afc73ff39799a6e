"""Data flows one way: config -> data -> models -> objectives -> training -> run directory ->
inference / evaluation -> API -> CLI. Every import in the package, including those inside
functions, must point down (or sideways within its own layer): this keeps editing,
translation and the web app addable as rooms, not wires."""
import ast
from pathlib import Path

import ganforge

PACKAGE = Path(ganforge.__file__).parent

# Layer of each top-level module or sub-package; a module may import only its own or lower layers.
LAYERS = {
    "errors": 0, "atomic": 0, "registry": 0, "config": 0, "rundir": 0, "checkpoint": 0, "imageio": 0,
    "distributed": 0, "presets": 0,
    "data": 1,
    "models": 2, "losses": 2,
    "objectives": 3,
    "resolve": 4, "tasks": 4,
    "training": 5,
    "inference": 6, "metrics": 6,
    "evaluate": 7, "evaluate_edit": 7, "evaluate_translate": 7, "texture": 7, "bench": 7, "export": 7, "report": 7, "runs_table": 7, "reference_dcgan": 7,
    "api": 8, "app": 8,
    "cli": 9, "__main__": 9, "__init__": 9,
}
# Inference (and what is built on it) runs trained models without the training code.
FORBIDDEN = {("inference", "training"), ("metrics", "training")}


def unit(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_units(path: Path):
    """Top-level ganforge units imported anywhere in `path` (relative and absolute imports)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                parts = list(path.relative_to(PACKAGE).parts[:-1])
                base = parts[:len(parts) - up] if up <= len(parts) else None
                if base is None:
                    continue
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    yield target[0].removesuffix(".py"), node.lineno
                else:  # "from . import x" at the top level
                    for alias in node.names:
                        yield alias.name, node.lineno
            elif node.module and node.module.split(".")[0] == "ganforge":
                rest = node.module.split(".")[1:]
                names = [rest[0]] if rest else [a.name for a in node.names]
                for name in names:
                    yield name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ganforge" and len(parts) > 1:
                    yield parts[1], node.lineno


def test_every_unit_has_a_layer():
    units = {unit(p) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_imports_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit(path)
        for target, line in imported_units(path):
            if target not in LAYERS or target == source:
                continue
            if LAYERS[target] > LAYERS[source] or (source, target) in FORBIDDEN:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_check_can_fail(tmp_path, monkeypatch):
    """A data module importing training must be caught."""
    fake = PACKAGE / "data" / "_layering_probe.py"
    fake.write_text("from ..training import Trainer\n")
    try:
        found = list(imported_units(fake))
    finally:
        fake.unlink()
    assert ("training", 1) in found
