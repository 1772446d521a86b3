"""Every call kept: what the dispatcher keeps of a session (its recording and its report), where,
and who may read or erase it (docs/recording.md).

The bot taps the call; the dispatcher owns the upload. settings.py reads the policy, store.py is
the one contract every backend follows (local_store.py a folder, s3_store.py S3 and S3-compatible
stores, azure_store.py Azure Blob Storage), recordings.py opens, signs and completes each session's
upload, report.py writes what was and was not kept and why, ending.py notices a session's end,
whatever ended it.
"""
