"""``python -m xattr.cli``: the ``xattr`` command."""
import sys

from . import main

if __name__ == "__main__":  # importing this module (a walk over the package) runs nothing
    sys.exit(main())
