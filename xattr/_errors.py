"""The one exception base of xattr: every error xattr defines is an :class:`XattrError` *and* the built-in type
people already catch (a bad file is a ``ValueError``, a missing rule a ``NotImplementedError``), so both
``except xattr.XattrError`` and ``except ValueError`` work."""


class XattrError(Exception):
    """Base of every exception xattr defines."""
