"""`voicefleet eval`: scenarios a team keeps beside its bot, run as real calls against a deployment
and checked turn by turn (docs/evals.md)."""
