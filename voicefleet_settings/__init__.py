"""The settings catalogue every voicefleet process reads its environment through: the shape of a
setting (model.py), every setting once with its default, bounds and meaning (catalogue.py), the
index of their names (names.py) and the typed readers (read.py). The dispatcher and the bot host both
read it, so it sits below them and imports nothing of voicefleet's: only the standard library."""
