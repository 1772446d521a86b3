"""`python -m stacks.plan`: the offline plan of a stack, after the preflight (stacks/tools/plan.py).

A shim, so the documented command stays short; the tool itself lives with the other tools.
"""

from stacks.tools.plan import main

if __name__ == "__main__":
    raise SystemExit(main())
