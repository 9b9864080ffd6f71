#!/usr/bin/env python3
"""Parses every .bicep file under infra/ with pycep; exits non-zero naming each file that fails.

There is no Bicep compiler on these machines: pycep (the parser checkov uses) is the syntax
check, and checkov then reads the same files for its policy checks.
"""

import pathlib
import sys

from pycep import BicepParser


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "infra")
    files = sorted(root.rglob("*.bicep"))
    if not files:
        print(f"check_bicep: no .bicep files under {root}", file=sys.stderr)
        return 1
    parser = BicepParser()
    failed = 0
    for path in files:
        try:
            parser.parse(file_path=path)
        except Exception as error:  # pycep raises lark errors and its own
            failed += 1
            # lark lists every token it expected: the first lines say where and what.
            reason = "\n    ".join(str(error).splitlines()[:3])
            print(f"check_bicep: {path} does not parse: {reason}", file=sys.stderr)
        else:
            print(f"check_bicep: {path} parses")
    print(f"check_bicep: {len(files) - failed} of {len(files)} files parse")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
