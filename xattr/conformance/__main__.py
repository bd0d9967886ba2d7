"""``python -m xattr.conformance generate | check MODULE:FUNCTION | list``."""
from __future__ import annotations

import argparse
import sys

from . import DATA_DIR, check, generate, load, load_adapter, summary


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m xattr.conformance", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="recompute the vectors with xattr and write them")
    g.add_argument("--out", default=DATA_DIR, help="output folder (default: the package's data folder)")
    c = sub.add_parser("check", help="run an adapter MODULE:FUNCTION against the vectors")
    c.add_argument("adapter", help="e.g. mypkg.conformance:adapter, or xattr.conformance:xattr_adapter")
    c.add_argument("--methods", nargs="*", help="only these methods")
    c.add_argument("--models", nargs="*", help="only these models (see `list`)")
    c.add_argument("--include-random", action="store_true", help="also cases that depend on xattr's random stream")
    c.add_argument("--rtol", type=float, help="override the stored relative tolerance (e.g. 1e-5 for float32)")
    c.add_argument("--atol", type=float)
    c.add_argument("--data", default=DATA_DIR, help="vectors folder")
    c.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    sub.add_parser("list", help="list the cases")
    args = p.parse_args(argv)
    if args.cmd == "generate":
        m = generate(args.out)
        print(f"wrote {len(m['cases'])} cases ({len(m['not_applicable'])} not applicable) for "
              f"{len(m['methods'])} methods to {args.out}")
        return 0
    if args.cmd == "list":
        _, cases = load()
        for case in cases:
            print(f"{case.id}  shape={case.expected.shape}  rtol={case.rtol:g}" + ("  (random)" if case.random else ""))
        return 0
    results = check(load_adapter(args.adapter), methods=args.methods, include_random=args.include_random,
                    rtol=args.rtol, atol=args.atol, data_dir=args.data, models=args.models)
    for r in results:
        if args.verbose or r.status in ("fail", "error"):
            print(f"{r.status.upper():5s} {r.case.id}: {r.message}")
    print(summary(results))
    return 1 if any(r.status in ("fail", "error") for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. piped into head
        sys.exit(0)
