"""The claims table on residual and dense graphs: every registered method, every declared axiom, on the small ResNet
and the DenseNet block of :mod:`xattr.testing.networks` (the chain case is tests/test_conformance.py)."""
import pytest

from xattr.testing import parametrize_with_checks


@parametrize_with_checks(case={"arch": "resnet"})
def test_claims_hold_on_a_residual_net(attribution, check):
    check(attribution)


@parametrize_with_checks(case={"arch": "densenet"})
def test_claims_hold_on_a_dense_block(attribution, check):
    check(attribution)


def test_unknown_arch_is_refused():
    from xattr.testing.cases import default_case

    with pytest.raises(ValueError, match="arch must be 'cnn' or one of"):
        default_case("completeness", arch="vgg")
