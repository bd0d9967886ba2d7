"""The claims table (xattr/testing/claims.py) is complete and the README shows it."""
import re
from pathlib import Path

from xattr.testing import CHECKS, CLAIMS
from xattr.testing.claims import claims_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_entry_declares_every_check_once():
    for name, claims in CLAIMS.items():
        bases = [base for _, base, _, _ in claims.entries()]
        assert set(bases) == set(CHECKS), name
        assert not set(claims.claims) & set(claims.violations), name
        for key, _, _, reason in claims.entries():
            assert reason is None or len(reason) > 20, (name, key)  # a violation says why


def test_readme_shows_the_claims_table():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- claims-table:start -->\n(.*?)\n<!-- claims-table:end -->", text, re.S)
    assert block, "README lacks the claims-table markers"
    assert block.group(1) == claims_table(), (
        "README's claims table is stale; regenerate with "
        "python -c \"from xattr.testing.claims import claims_table; print(claims_table())\"")


def test_the_core_methods_have_entries():
    for name in ["gradient", "gradient_x_input", "deconvnet", "guided_backprop", "cam", "grad_cam", "guided_grad_cam",
                 "integrated_gradients", "smoothgrad", "expected_gradients", "deeplift", "deepshap", "lrp",
                 "occlusion", "lime", "kernel_shap", "shapley"]:
        assert name in CLAIMS
