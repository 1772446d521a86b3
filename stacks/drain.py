"""`python -m stacks.drain`: before a destroy, remove every machine the dispatcher launched (stacks/tools/drain.py).

A shim, so the documented command stays short; the tool itself lives with the other tools.
"""

from stacks.tools.drain import main

if __name__ == "__main__":
    raise SystemExit(main())
