"""A shared speech-to-speech model service (Moshi's protocol) that converged bots stream to: its
capacity read, and starts admitted against it (docs/converged.md)."""
