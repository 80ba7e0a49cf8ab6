"""The package layout and its import rule, read from the source (every import, at any depth).

The building blocks (layers, models, data, optimizers, losses, distribute) never import the
trainers (distillers) or the runs (experiment); distillers never imports experiment. Scripts,
configs, bench and tests import what they need. The package root holds only `__init__.py`, and
the tests mirror the subpackages.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_agnostic

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "iekd_keras"
BUILDING_BLOCKS = ("layers", "models", "data", "optimizers", "losses", "distribute")
SUBPACKAGES = {*BUILDING_BLOCKS, "distillers", "experiment"}
FORBIDDEN = {
    **{name: {"distillers", "experiment"} for name in BUILDING_BLOCKS},
    "distillers": {"experiment"},
    "experiment": set(),
}


def module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path):
    """(line, dotted name) of every module `path` imports, relative imports made absolute.

    `from package import name` yields `package.name` when that is a module or subpackage of
    iekd_keras, else `package` itself.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (REPO / Path(*candidate.split("."))).is_dir() or (
                    REPO / Path(*candidate.split("."))
                ).with_suffix(".py").is_file()
                yield node.lineno, candidate if is_module else base


def subpackage_of(dotted):
    """The iekd_keras subpackage a dotted name lies in, "" for the root, None outside."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE.name:
        return None
    return parts[1] if len(parts) > 1 else ""


def package_modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_root_holds_only_init_and_the_subpackages():
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    extra, missing = entries - {"__init__.py", *SUBPACKAGES}, SUBPACKAGES - entries
    assert not extra, f"iekd_keras/ holds {sorted(extra)}: only __init__.py and the subpackages"
    assert not missing, f"iekd_keras/ lacks the subpackages {sorted(missing)}"
    for name in sorted(SUBPACKAGES):
        assert (PACKAGE / name / "__init__.py").is_file(), f"iekd_keras/{name} has no __init__.py"


def test_the_building_blocks_never_import_distillers_or_experiment():
    # The root's __init__ imports these subpackages: importing the root imports them too.
    root_imports = {
        subpackage_of(dotted)
        for _, dotted in imported_modules(PACKAGE / "__init__.py")
        if subpackage_of(dotted)
    }
    violations = []
    for path in package_modules():
        own = subpackage_of(module_name(path))
        if not own:
            continue
        for line, dotted in imported_modules(path):
            target = subpackage_of(dotted)
            reached = root_imports if target == "" else {target}
            for bad in sorted(reached & FORBIDDEN[own]):
                via = "" if target else f" (the package root, whose __init__ imports {bad})"
                violations.append(
                    f"{path.relative_to(REPO)}:{line} imports {dotted}{via}: "
                    f"{own} must not import {bad}"
                )
    assert not violations, "\n".join(violations)


def test_the_tests_mirror_the_subpackages():
    missing = sorted(name for name in SUBPACKAGES if not (REPO / "tests" / name).is_dir())
    assert not missing, f"no tests/<name>/ folder for the subpackages {missing}"


def test_the_import_reader_sees_nested_and_relative_imports(tmp_path, monkeypatch):
    """The reader is no weaker than the rule: imports inside functions and relative ones count."""
    fake = tmp_path / "iekd_keras" / "layers"
    fake.mkdir(parents=True)
    (tmp_path / "iekd_keras" / "distillers").mkdir()
    (tmp_path / "iekd_keras" / "distillers" / "distiller.py").write_text("")
    module = fake / "probe.py"
    module.write_text(
        "import keras\n"
        "def f():\n"
        "    from ..distillers import distiller\n"
        "    from ..experiment.train import train_and_evaluate\n"
        "    import iekd_keras.losses.crd as crd\n"
        "    from iekd_keras import Distiller\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert sorted(imported_modules(module)) == [
        (1, "keras"),
        (3, "iekd_keras.distillers.distiller"),
        (4, "iekd_keras.experiment.train"),
        (5, "iekd_keras.losses.crd"),
        (6, "iekd_keras"),
    ]
