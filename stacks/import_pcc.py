"""`python -m stacks.import_pcc`: a Pipecat Cloud pcc-deploy.toml as stack config commands (stacks/tools/import_pcc.py).

A shim, so the documented command stays short; the tool itself lives with the other tools.
"""

from stacks.tools.import_pcc import main

if __name__ == "__main__":
    raise SystemExit(main())
