"""Every registered xattr method against the axioms it claims (xattr/testing/claims.py).

Claimed checks must pass; declared violations are strict xfails that must fail with an
AssertionError, so a violation that disappears is reported as well.
"""
from xattr.testing import parametrize_with_checks


@parametrize_with_checks()
def test_method_conforms_to_its_claims(attribution, check):
    check(attribution)
