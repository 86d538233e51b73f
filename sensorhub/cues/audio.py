"""Cue audio rendered ahead of time and cached: espeak-ng speech when installed, else distinct tones.

Clips are mono 16-bit PCM WAV bytes, under ``MAX_CLIP_S``; ``render_all(phrases)`` at start-up keeps the
live path free of synthesis. ``play(clip)`` (optional) hands a clip to the host's player (aplay/paplay).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sensorhub.errors import SinkError

SAMPLE_RATE_HZ = 22050
MAX_CLIP_S = 0.95
TONE_FREQS_HZ = (440.0, 523.25, 587.33, 659.25, 783.99, 880.0, 987.77, 1046.5)


@dataclass(frozen=True, slots=True)
class Clip:
    phrase: str
    wav: bytes
    duration_s: float
    kind: str  # "speech" | "tone"

    def samples(self) -> np.ndarray:
        with wave.open(io.BytesIO(self.wav), "rb") as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def _wav(pcm: np.ndarray, rate_hz: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def tone_clip(phrase: str, rate_hz: int = SAMPLE_RATE_HZ) -> Clip:
    """A short melody that identifies the phrase: 2-3 notes picked from its CRC (same phrase, same tones)."""
    h = zlib.crc32(phrase.encode())
    n_notes = 2 + h % 2
    note_s = 0.16
    gap_s = 0.04
    parts = []
    for k in range(n_notes):
        f = TONE_FREQS_HZ[(h >> (3 * k + 1)) % len(TONE_FREQS_HZ)]
        t = np.arange(int(note_s * rate_hz)) / rate_hz
        env = np.minimum(1.0, np.minimum(t, note_s - t) / 0.01)  # 10 ms ramps: no clicks
        parts += [0.5 * np.sin(2 * np.pi * f * t) * env, np.zeros(int(gap_s * rate_hz))]
    pcm = np.round(np.concatenate(parts) * 32767).astype(np.int16)
    return Clip(phrase, _wav(pcm, rate_hz), pcm.shape[0] / rate_hz, "tone")


def speech_clip(phrase: str, espeak: str) -> Clip | None:
    """espeak-ng speech, sped up until it fits in MAX_CLIP_S; None when synthesis fails."""
    for words_per_min in (190, 240, 300, 370):
        try:
            proc = subprocess.run(
                [espeak, "--stdout", "-s", str(words_per_min), "--", phrase],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0 or not proc.stdout:
            return None
        try:
            with wave.open(io.BytesIO(proc.stdout), "rb") as w:
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        except (wave.Error, EOFError):
            return None
        loud = np.flatnonzero(np.abs(pcm) > 300)
        if loud.size == 0:
            return None
        pcm = pcm[max(0, loud[0] - rate // 100) : loud[-1] + rate // 50]  # trim silence
        if pcm.shape[0] / rate <= MAX_CLIP_S:
            return Clip(phrase, _wav(pcm, rate), pcm.shape[0] / rate, "speech")
    return None


def audio_id(phrase: str) -> str:
    """The name a phrase's clip is served under (``knees out`` -> ``knees-out``): URL- and file-safe."""
    slug = re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-")
    return slug or f"cue-{zlib.crc32(phrase.encode()):08x}"


class CueAudio:
    """Renders and caches one clip per phrase."""

    def __init__(self, prefer_speech: bool = True) -> None:
        self._espeak = shutil.which("espeak-ng") if prefer_speech else None
        self._cache: dict[str, Clip] = {}

    def clip(self, phrase: str) -> Clip:
        clip = self._cache.get(phrase)
        if clip is None:
            clip = (speech_clip(phrase, self._espeak) if self._espeak else None) or tone_clip(phrase)
            self._cache[phrase] = clip
        return clip

    def render_all(self, phrases: Iterable[str]) -> dict[str, Clip]:
        return {p: self.clip(p) for p in phrases}

    def by_id(self, clip_id: str) -> Clip | None:
        """A rendered clip by its ``audio_id`` (None if no phrase of that id was rendered)."""
        for phrase, clip in self._cache.items():
            if audio_id(phrase) == clip_id:
                return clip
        return None


def play(clip: Clip) -> subprocess.Popen[bytes]:
    """Start playing on the host's audio device (non-blocking); SinkError when no player is installed."""
    for player, args in (("paplay", []), ("aplay", ["-q"])):
        exe = shutil.which(player)
        if exe:
            proc = subprocess.Popen(
                [exe, *args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            assert proc.stdin is not None
            proc.stdin.write(clip.wav)
            proc.stdin.close()
            return proc
    raise SinkError(
        "no audio player found (install pulseaudio-utils for paplay or alsa-utils for aplay); "
        "cues still reach the dashboard"
    )
