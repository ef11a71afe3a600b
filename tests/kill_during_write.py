"""`python tests/kill_during_write.py N ARGS...`: run `python -m diffring ARGS...` and die with status
137 (like `kill -9`) during its N-th atomic write, after the temporary file is written and before it
is renamed into place. Used by tests/test_resume.py; the fault lives here, not in the package.

`diffring._checkpoint.write_atomic` writes a temporary `.NAME.*.tmp` and renames it with `os.replace`;
this process's `os.replace` is wrapped to count those renames and exit at the N-th."""

from __future__ import annotations

import os
import runpy
import sys


def main() -> None:
    kill_at, args = int(sys.argv[1]), sys.argv[2:]
    rename = os.replace
    seen = 0

    def replace(src, dst, *a, **kw):
        nonlocal seen
        name = os.path.basename(os.fspath(src))
        if name.startswith(".") and name.endswith(".tmp"):
            seen += 1
            if seen == kill_at:
                os._exit(137)
        return rename(src, dst, *a, **kw)

    os.replace = replace
    sys.argv = ["diffring", *args]
    runpy.run_module("diffring", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
