"""Campaigns: a list of numbers called out, paced, retried, followed to each outcome (docs/phone.md#campaigns).
The rows live in the coordination store (dispatcher/store/campaign_book.py) and every replica works them
(worker.py), each call placed as `POST /calls` places one (dispatcher/api/call_order.py)."""
