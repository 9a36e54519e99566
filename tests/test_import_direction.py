"""Imports run one way: tasks <- evals -> models -> kernels (evals may use tasks and kernels directly; tasks
and kernels use no other part). Nothing imports the command line but ``python -m longctx.evals``, nothing
imports ``benchmarks/``, and no library code runs ``python -m longctx.evals``. Read from the source (ast),
every import counted, those inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "longctx"
MAY_USE = {
    "tasks": {"tasks"},
    "kernels": {"kernels"},
    "models": {"models", "kernels"},
    "evals": {"evals", "tasks", "models", "kernels"},
}
CLI = "longctx.evals.cli"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``tree``; relative ones resolved against ``module``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names if a.name != "*"]
    return out


def runs_the_cli(tree: ast.AST) -> list[int]:
    """Lines of a ``-m longctx.evals`` command line: a list or tuple with "-m" then "longctx.evals...", or a
    string holding "-m longctx.evals" passed to a call."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if any(a == "-m" and isinstance(b, str) and b.startswith("longctx.evals") for a, b in zip(words, words[1:])):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            args = [*node.args, *(k.value for k in node.keywords)]
            lines += [a.lineno for a in args if isinstance(a, ast.Constant) and "-m longctx.evals" in str(a.value)]
    return lines


def problems(module: str, source: str, is_package: bool = False) -> list[str]:
    """What in ``source`` (the text of ``module``) runs against the import direction."""
    tree = ast.parse(source)
    part = module.split(".")[1] if module.count(".") else None
    wrong = []
    for line, name in imported(tree, module, is_package):
        top = name.split(".")
        if top[0] == "benchmarks":
            wrong.append(f"line {line}: {name} (nothing in the package imports benchmarks/)")
        if top[0] != "longctx" or len(top) < 2:
            continue
        if (name == CLI or name.startswith(CLI + ".")) and module != "longctx.evals.__main__" and not module.startswith(CLI):
            wrong.append(f"line {line}: {name} (only `python -m longctx.evals` imports the command line)")
        if part in MAY_USE and top[1] in MAY_USE and top[1] not in MAY_USE[part]:
            wrong.append(f"line {line}: {name} ({part} may use only {', '.join(sorted(MAY_USE[part]))})")
    return wrong + [f"line {line}: runs `python -m longctx.evals` (call the library function instead)"
                    for line in runs_the_cli(tree)]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_the_package():
    names = {module_name(p) for p in SOURCES}
    assert {"longctx.evals.cli", "longctx.tasks.registry", "longctx.models.hf", "longctx.kernels.flash.ops"} <= names


@pytest.mark.parametrize("module,source,says", [
    ("longctx.kernels.flash.ops", "from longctx.models.hf import HFModel", "kernels may use only kernels"),
    ("longctx.tasks.ruler", "def f():\n    import longctx.evals.scoring", "tasks may use only tasks"),
    ("longctx.models.hf", "from ..evals import runner", "models may use only kernels, models"),
    ("longctx.evals.plot", "from longctx.evals.cli import app", "only `python -m longctx.evals`"),
    ("longctx.evals.run", "from benchmarks.zoo import make", "benchmarks/"),
    ("longctx.models.zoo.trainer", "subprocess.run([sys.executable, '-m', 'longctx.evals', 'run'])", "runs `python -m"),
])
def test_the_rules_catch_each_wrong_kind(module, source, says):
    assert any(says in p for p in problems(module, source))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_run_one_way(path: Path):
    module = module_name(path)
    wrong = problems(module, path.read_text(encoding="utf-8"), path.name == "__init__.py")
    assert not wrong, f"{module}:\n" + "\n".join(wrong)
