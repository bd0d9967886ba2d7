"""The documentation: the Sphinx site builds with warnings as errors and shows what the code holds; the README is
short, its code runs and its links resolve; no page or file tells the project's development history.

Oracles: the registries themselves (``xattr.rule_table``, the claims table, ``available_methods``), the package's
modules (``pkgutil``), the files on disk.  The notebooks are not executed here (``tests/test_notebooks.py`` runs
them); ``.ci/run`` builds the site with them executed.
"""
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xattr
from xattr import docs as xdocs

from extras import need  # tests/extras.py: optional packages of the test suite

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    need("sphinx", "the documentation build")
    need("myst_nb", "the documentation build")
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
           "-D", "nb_execution_mode=off", str(DOCS), str(out / "html")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, f"sphinx-build -W failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
    return out / "html"


def _text(path):
    return re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))


def test_sphinx_site_builds_with_warnings_as_errors_and_shows_the_registries(site):
    rules = _text(site / "rules.html")
    table = xattr.rule_table(fmt="dict")
    for layer, row in table.items():
        assert layer in rules, layer
        for rule in row:
            assert rule in rules, rule
    axioms = _text(site / "axioms.html")
    from xattr.testing import CLAIMS

    for name in CLAIMS:
        assert name in axioms, name
    methods = _text(site / "methods.html")
    for name in xattr.available_methods():
        assert name in methods, name


def test_api_reference_documents_every_public_function_and_class_once(site):
    """Each function and class of every public module has exactly one entry (an anchor named by its full path)."""
    anchors = {}
    for page in (site / "api").glob("*.html"):
        for anchor in re.findall(r'<dt class="sig sig-object py" id="([\w.]+)"', page.read_text(encoding="utf-8")):
            anchors.setdefault(anchor, []).append(page.name)
    missing, twice = [], []
    for module in xdocs.public_modules("xattr"):
        for name in xdocs.api_members(module):
            where = anchors.get(f"{module}.{name}", [])
            (missing if not where else twice if len(where) > 1 else []).append(f"{module}.{name}")
    assert not missing, f"not in the API reference: {missing}"
    assert not twice, f"documented twice: {twice}"
    assert len(anchors) > 100


def test_notebooks_are_pages_of_the_site(site):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (site / "notebooks" / f"{nb.stem}.html").exists(), nb.name


def test_every_public_module_is_on_an_api_page():
    """A page ``docs/api/*.md`` carries ``<!-- generated: api PACKAGE -->``; together they cover every module."""
    covered = set()
    for page in (DOCS / "api").glob("*.md"):
        for name, arg in xdocs.MARKER.findall(page.read_text(encoding="utf-8")):
            if name == "api":
                covered |= set(xdocs.public_modules(arg))
    top = {m.split(".")[1] for m in xdocs.public_modules("xattr") if m.count(".") >= 1}
    missing = [m for m in xdocs.public_modules("xattr") if m != "xattr" and m not in covered]
    assert not missing, f"add a page docs/api/<name>.md with <!-- generated: api xattr.<name> --> for: {missing}"
    assert top <= {m.split(".")[1] for m in covered}


def test_generated_markers_render_the_registries_and_unknown_ones_are_refused():
    text = "before\n<!-- generated: rule-table -->\nafter\n<!-- generated: methods -->\n"
    out = xdocs.render(text)
    assert xattr.rule_table() in out and "<!-- generated" not in out
    for name in xattr.available_methods():
        assert f"| `{name}` |" in out
    with pytest.raises(ValueError, match="unknown generated block 'nonsense'"):
        xdocs.render("<!-- generated: nonsense -->")
    with pytest.raises(ValueError, match="needs a package"):
        xdocs.render("<!-- generated: api -->")
    assert xdocs.main(["rule-table"]) == 0 and xdocs.main(["nonsense"]) == 2


def test_owner_of_a_function_defined_in_a_private_module_is_its_public_package():
    from xattr.io import from_torch

    assert from_torch.__module__ == "xattr.io._torch"
    assert "from_torch" in xdocs.api_members("xattr.io")
    assert "from_torch" not in xdocs.api_members("xattr")  # re-exports are documented where they are defined
    assert "gradient" in xdocs.api_members("xattr.methods.gradient")
    assert "gradient" not in xdocs.api_members("xattr.methods")


# -- the README ---------------------------------------------------------------------------------------
def test_readme_is_at_most_15_kb():
    assert len(README.read_bytes()) <= 15_000


def test_readme_says_the_distribution_cannot_share_an_environment_with_the_pypi_xattr():
    text = README.read_text(encoding="utf-8")
    assert "`xattr-ref`" in text and "cannot share one environment" in text


def test_readme_ten_lines_run_and_give_the_shapes_they_state():
    text = README.read_text(encoding="utf-8")
    code = re.search(r"## Ten lines\n\n```python\n(.*?)```", text, re.S).group(1)
    scope = {}
    exec(compile(code, "README.md (ten lines)", "exec"), scope)  # noqa: S102 - the README's own example
    assert scope["g"].shape == (4, 3, 64, 64) and scope["s"].shape == (4, 64, 64)
    assert scope["heat"].shape == (4, 1, 64, 64) and scope["gb"].shape == (4, 3, 64, 64)


def test_readme_methods_table_is_generated_from_the_specs_and_up_to_date():
    text = README.read_text(encoding="utf-8")
    assert "<!-- begin generated: readme-methods -->" in text
    assert xdocs.update_blocks(text) == text, (
        "the README's generated blocks are stale: python -m xattr.docs update README.md"
    )
    for name in xattr.available_methods():
        assert f"| `{name}` |" in text, name
    with pytest.raises(ValueError, match="unknown generated block 'nonsense'"):
        xdocs.update_blocks("<!-- begin generated: nonsense -->\nold\n<!-- end generated -->")


def test_docs_update_rewrites_a_stale_block_in_place(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- begin generated: readme-methods -->\nstale\n<!-- end generated -->\nend\n")
    assert xdocs.main(["update", str(page)]) == 0
    out = page.read_text()
    assert (
        "stale" not in out
        and "| `gradient` | `xattr.gradient` |" in out
        and out.endswith("<!-- end generated -->\nend\n")
    )


def test_readme_use_your_own_model_runs_on_torchvision_resnet18():
    torch = need("torch", "the README's own-model example")
    torchvision = need("torchvision", "the README's own-model example")
    import numpy as np

    text = README.read_text(encoding="utf-8")
    code = re.search(r"## Use your own model\n.*?```python\n(.*?)```", text, re.S).group(1)
    torch.manual_seed(0)
    scope = {"np": np, "torchvision": torchvision, "xattr": xattr}
    exec(compile(code, "README.md (use your own model)", "exec"), scope)  # noqa: S102 - the README's own example
    assert scope["saliency"].shape == (1, 3, 224, 224) and scope["cam"].shape == (1, 1, 224, 224)
    torch.manual_seed(0)  # same seed, same weights: the imported graph computes torch's scores
    net = torchvision.models.resnet18().eval().double()
    with torch.no_grad():
        ref = net(torch.from_numpy(scope["x"])).numpy()
    assert np.allclose(scope["model"](scope["x"]), ref, rtol=1e-10, atol=1e-12)


def test_every_moved_section_has_a_page_that_the_readme_links_to():
    text = README.read_text(encoding="utf-8")
    for page in ["rules", "axioms", "quadratures", "peers", "batch", "conformance_vectors", "relevance",
                 "perturbation", "evaluation", "demo", "importing", "notebooks", "development"]:
        assert (DOCS / f"{page}.md").exists(), page
        assert f"(docs/{page}.md)" in text, page
    assert "(benchmarks/README.md)" in text


def test_relative_links_in_readme_and_docs_resolve():
    broken = []
    for page in [README, ROOT / "benchmarks" / "README.md", *DOCS.glob("*.md"), *DOCS.glob("api/*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


# -- no development history -------------------------------------------------------------------------
# Pieces joined at run time, so that this file does not match itself.
HISTORY = re.compile("|".join([
    r"\bissue" + r" ?#?\d+", r"not on " + "main", r"on main " + "yet", r"this " + "session", r"this " + "branch",
    r"once it is " + "merged", r"not yet " + "merged", r"the issue" + "'s", r"same " + "issue",
]), re.I)


def test_no_development_history_in_readme_docs_code_and_tests():
    files = [README, ROOT / "benchmarks" / "README.md", *DOCS.rglob("*.md"), *ROOT.glob("xattr/**/*.py"),
             *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("notebooks/*.ipynb")]
    found = []
    for path in files:
        if "_build" in path.parts or path.parent == DOCS / "notebooks" or path == Path(__file__).resolve():
            continue  # build output, copies of notebooks/, and this file's own examples of the pattern
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if HISTORY.search(line):
                found.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()[:100]}")
    assert not found, "\n".join(found)


def test_history_pattern_matches_what_it_should():
    for bad in ["see issue 9", "(issue #12)", "is not on main yet", "in this session", "The issue's target"]:
        assert HISTORY.search(bad), bad
    assert not HISTORY.search("issues a warning") and not HISTORY.search("the main job")


def test_docs_module_docstring_names_every_generator():
    doc = inspect.getdoc(xdocs)
    for name in xdocs.GENERATORS:
        assert f"``{name}" in doc, name


# -- numpydoc docstrings on every public function ---------------------------------------------------------------
#: Public functions allowed to lack a docstring or a numpydoc ``Parameters`` section, with the reason.  The test
#: below fails when an entry is no longer needed, so the list only shrinks.
NUMPYDOC_ALLOWLIST = {}


def _public_functions():
    import importlib

    for module in xdocs.public_modules("xattr"):
        mod = importlib.import_module(module)
        for name in xdocs.api_members(module):
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                yield f"{module}.{name}", obj


def _numpydoc_gaps(name, fn):
    doc = inspect.getdoc(fn) or ""
    params = [p for p in inspect.signature(fn).parameters]
    if not doc.strip():
        return "no docstring"
    if len(params) > 1 and not re.search(r"^Parameters\n-{3,}$", doc, re.M):
        return "no numpydoc Parameters section"
    return None


def test_numpydoc_gaps_tells_a_missing_docstring_from_a_missing_parameters_section():
    def f(x, a):
        pass

    f.__doc__ = "Sum.\n\nParameters\n----------\nx : ndarray ``(N, C, H, W)``\na : int\n\nReturns\n-------\nndarray"
    assert _numpydoc_gaps("f", f) is None
    f.__doc__ = "Sum of ``x`` and ``a``; the Parameters are ``x`` and ``a``."
    assert _numpydoc_gaps("f", f) == "no numpydoc Parameters section"
    f.__doc__ = None
    assert _numpydoc_gaps("f", f) == "no docstring"

    def g(x):
        """One parameter: prose is enough."""

    assert _numpydoc_gaps("g", g) is None


def test_every_public_function_has_a_docstring_and_a_numpydoc_parameters_section():
    """Every public function has a docstring; one with more than one parameter has a numpydoc ``Parameters``
    section (the API reference shows them).  Oracle: the functions themselves (``inspect``), over every module the
    API reference documents."""
    gaps = {name: gap for name, fn in _public_functions() if (gap := _numpydoc_gaps(name, fn))}
    unexplained = {name: gap for name, gap in gaps.items() if name not in NUMPYDOC_ALLOWLIST}
    assert not unexplained, "public functions without numpydoc docstrings:\n" + "\n".join(
        f"  {name}: {gap}" for name, gap in sorted(unexplained.items()))
    stale = sorted(set(NUMPYDOC_ALLOWLIST) - set(gaps))
    assert not stale, f"allowlisted but documented now (remove them from NUMPYDOC_ALLOWLIST): {stale}"
