"""The bot control channel's contract, shared by the bot and the dispatcher (both images carry it)."""
