"""The claims table (xattr/testing/claims.py) is complete (docs/axioms.md renders it at build time)."""
from xattr.testing import CHECKS, CLAIMS


def test_every_entry_declares_every_check_once():
    for name, claims in CLAIMS.items():
        bases = [base for _, base, _, _ in claims.entries()]
        assert set(bases) == set(CHECKS), name
        assert not set(claims.claims) & set(claims.violations), name
        for key, _, _, reason in claims.entries():
            assert reason is None or len(reason) > 20, (name, key)  # a violation says why


def test_the_core_methods_have_entries():
    for name in ["gradient", "gradient_x_input", "deconvnet", "guided_backprop", "cam", "grad_cam", "guided_grad_cam",
                 "integrated_gradients", "smoothgrad", "expected_gradients", "deeplift", "deepshap", "lrp",
                 "occlusion", "lime", "kernel_shap", "shapley"]:
        assert name in CLAIMS
