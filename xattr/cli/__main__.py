"""``python -m xattr.cli``: the ``xattr`` command."""
import sys

from . import main

sys.exit(main())
