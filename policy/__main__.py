"""voicefleet policy pack: `pulumi preview --policy-pack policy`. Validators live in rules.py.

Building the PolicyPack starts the analyzer server and blocks, so this file does nothing else
(tests import rules.py, never this module).
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import POLICIES

PolicyPack(name="voicefleet-guardrails", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
