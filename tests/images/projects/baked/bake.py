"""The model-baking hook: the image build runs this once, from BOT_MODELS_DIR, with network.

A real project downloads its model files here; this one writes a stand-in "model" so the build
can prove the hook ran and the runtime, offline, reads what it wrote.
"""

import os
from pathlib import Path

models = Path(os.environ["BOT_MODELS_DIR"])
(models / "greeting.txt").write_text("baked at build time\n", encoding="utf-8")
Path("written-from-the-working-directory.txt").write_text("cwd is BOT_MODELS_DIR\n", encoding="utf-8")
print(f"bake.py: wrote {sorted(p.name for p in models.iterdir())}")
