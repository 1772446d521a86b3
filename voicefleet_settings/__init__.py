"""The settings catalogue every voicefleet process reads its environment through: the shape of a
setting (model.py), every setting once with its default, bounds and meaning (catalogue.py), the
index of their names (names.py), the typed readers (read.py), and who may place calls where
(call_policy.py: one policy for the SIP edge's trunks and the dispatcher's carriers). The dispatcher,
the SIP edge and the bot host all read it, so it sits below them and imports nothing of voicefleet's:
only the standard library."""
