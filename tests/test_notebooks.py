"""Every notebook in notebooks/ runs top to bottom without error, with a kernel from this environment.

Notebooks are stored with outputs stripped (checked here), so they never carry stale results or errors.
A notebook lists the optional packages it needs in its metadata (``xattr.requires``); it runs here with
``XATTR_NOTEBOOK_QUICK=1``, which the notebooks on photographs read to use small crops (the docs build runs
them at full size).
"""
import glob
import os
import sys

import pytest

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

nbformat = need("nbformat", "the notebook tests")
nbclient = need("nbclient", "the notebook tests")
need("ipykernel", "the notebook tests")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_is_stored_stripped(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{os.path.basename(path)}: strip outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    for module in nb.metadata.get("xattr", {}).get("requires", []):  # e.g. the pretrained network's package
        need(module, f"notebook {os.path.basename(path)}")
    monkeypatch.setenv("XATTR_NOTEBOOK_QUICK", "1")  # notebooks on photos use small crops here (a full run: docs)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))  # which environment ran it
    # "python3" resolves to this interpreter: jupyter_client swaps a kernel command "python" for sys.executable
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    ran_in = nb.cells[-1].outputs[0]["text"].strip()
    assert os.path.realpath(ran_in) == os.path.realpath(sys.prefix), (ran_in, sys.prefix)
