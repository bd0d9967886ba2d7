"""Packaging: the README's test command is the whole suite, and it is what CI runs.

Oracles: the files themselves (README.md, .ci/run, setup.cfg) and the installed distributions' own metadata
(``importlib.metadata``), not a list kept in this test.
"""
import ast
import configparser
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

from extras import skip_or_fail  # tests/extras.py: optional packages of the test suite

ROOT = Path(__file__).resolve().parents[1]
DIST = "xattr-ref"
TORCH, TORCHVISION = "2.14.1", "0.29.1"  # the pair whose torchvision loads its compiled operators


def _extras():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    raw = cfg["options.extras_require"]
    return {name: [Requirement(line) for line in raw[name].strip().splitlines() if line.strip()] for name in raw}


def _install_requires():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return [Requirement(line) for line in cfg["options"]["install_requires"].strip().splitlines() if line.strip()]


def _flatten(extra, extras, seen=None):
    """The requirements an extra brings, following self-references such as ``xattr-ref[test,oracle]``."""
    seen = set() if seen is None else seen
    out = []
    for req in extras[extra]:
        if req.name == DIST:
            for sub in sorted(req.extras - seen):
                seen.add(sub)
                out += _flatten(sub, extras, seen)
        else:
            out.append(req)
    return out


def _readme_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return lines


def test_readme_opens_with_the_two_commands_install_and_demo_then_install_and_test():
    demo, tests = _readme_commands()[:2]
    assert re.search(r"pip install -e '?\.(\[imagenet\])?'?( |$)", demo) and "xattr demo" in demo  # the demo's extra
    assert "pip install -e '.[dev]'" in tests and tests.rstrip().endswith("pytest")


def test_ci_runs_exactly_the_readme_test_command():
    tests = _readme_commands()[1].strip()
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert tests in ci, f".ci/run must run the README's test command as written: {tests}"


def test_ci_lints_after_the_tests_and_the_tree_is_ruff_clean():
    """``.ci/run`` runs ``ruff check .`` after the test command, the pre-commit hook runs ruff too, and ruff (the
    rules in pyproject.toml) finds nothing in the tree: the test fails on any finding, as CI would."""
    import importlib.util
    import subprocess

    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    tests = _readme_commands()[1].strip()
    assert "ruff check ." in lines and lines.index("ruff check .") > lines.index(tests)
    assert "entry: ruff check" in (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    if importlib.util.find_spec("ruff") is None:
        skip_or_fail("ruff (the 'lint' extra) is not installed here")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"ruff check . reports:\n{r.stdout[-6000:]}{r.stderr[-2000:]}"


def test_dev_brings_every_other_extra_except_the_notebook_front_end():
    extras = _extras()
    dev = {str(r) for r in _flatten("dev", extras)}
    for name in extras:
        if name in ("dev", "notebooks"):
            continue
        missing = {str(r) for r in _flatten(name, extras)} - dev
        assert not missing, f"extra {name!r} has {missing} that 'dev' does not bring"


def test_torch_and_torchvision_are_pinned_as_the_pair_that_loads_everywhere_they_are_named():
    extras = _extras()
    named = 0
    for name, reqs in extras.items():
        for req in reqs:
            if req.name == "torch":
                assert str(req.specifier) == f"=={TORCH}", (name, str(req))
                named += 1
            if req.name == "torchvision":
                assert str(req.specifier) == f"=={TORCHVISION}", (name, str(req))
                assert any(r.name == "torch" for r in reqs), f"{name}: torchvision without its torch"
    assert named >= 4
    core = [r for r in _install_requires() if r.name in ("torch", "torchvision")]
    assert not core, "torch is never a core dependency"


def _third_party_imports():
    """Top-level modules imported by the test files and by the optional packages they ``need(...)``."""
    local = {p.stem for folder in ("tests", "benchmarks") for p in (ROOT / folder).glob("*.py")} | {
        "xattr",
        "benchmarks",
    }
    found = set()
    for path in (ROOT / "tests").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "need" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value.split(".")[0])
    return sorted(m for m in found if m not in local and m not in sys.stdlib_module_names)


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(reqs):
    """Every distribution the requirements bring when installed, transitively (from installed metadata)."""
    todo, seen = [(r.name, frozenset(r.extras)) for r in reqs], set()
    while todo:
        name, wanted = todo.pop()
        key = (_norm(md.distribution(name).metadata["Name"]), wanted)
        if key in seen:
            continue
        seen.add(key)
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


def test_every_package_the_tests_import_comes_with_the_dev_extra():
    """A test that imports a package which ``pip install -e '.[dev]'`` does not bring would be skipped (or fail) on
    a fresh clone: every third-party module imported by tests/ must belong to a distribution that the core
    requirements or the ``dev`` extra install, directly or as a dependency."""
    owners = md.packages_distributions()
    wanted = _install_requires() + _flatten("dev", _extras())
    try:
        closure = _closure(wanted)
    except md.PackageNotFoundError as exc:
        skip_or_fail(f"the 'dev' extra is not fully installed here ({exc} is missing)")
    for module in _third_party_imports():
        if module not in owners:
            skip_or_fail(f"the tests import {module!r}, which is not installed")
        dists = {_norm(d) for d in owners[module]}
        assert dists & closure, f"tests import {module!r} (from {dists}), which neither the core nor 'dev' installs"
