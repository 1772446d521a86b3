"""The Silero VAD model, loaded while the host is warm and shared with the user's bot.

Every Pipecat voice bot builds a `SileroVADAnalyzer()` in its session, and each one creates an
ONNX Runtime session for the model shipped in the pipecat wheel (~30 ms, on the path to the first
audio). The host creates that ONNX session once, before it reports ready, and hands it to every
`SileroOnnxModel` built for the same file afterwards. The session is safe to share: the model's
recurrent state lives in each `SileroOnnxModel`, passed in on every run, and ONNX Runtime
sessions may run concurrently. Only the model file the host loaded is shared; any other path
loads as Pipecat would.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


def preload_silero() -> None:
    """Loads the wheel's Silero model into an ONNX session that later analyzers reuse."""
    from pipecat.audio.vad import silero

    onnxruntime = vars(silero)["onnxruntime"]  # the module as silero.py imported it
    if isinstance(onnxruntime, _SharedSessions):
        return
    warm = silero.SileroVADAnalyzer()  # builds the model exactly as Pipecat does
    session = warm._model.session  # noqa: SLF001 - the analyzer exposes no other handle on its model
    if isinstance(getattr(session, "_model_path", None), str):  # else: a changed ONNX Runtime, no sharing
        setattr(silero, "onnxruntime", _SharedSessions(onnxruntime, session))  # noqa: B010 - not re-exported


class _SharedSessions(SimpleNamespace):
    """`onnxruntime` as the silero module sees it, but `InferenceSession(<the loaded model>)` reuses it."""

    def __init__(self, onnxruntime: Any, session: Any) -> None:
        super().__init__()
        self._onnxruntime = onnxruntime
        self._session = session
        self._path = session._model_path  # noqa: SLF001 - where ONNX Runtime keeps the file name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._onnxruntime, name)

    def InferenceSession(self, path: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - onnxruntime's name
        if str(path) == self._path:
            return self._session
        return self._onnxruntime.InferenceSession(path, *args, **kwargs)
