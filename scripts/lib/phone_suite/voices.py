"""Speech for the suite's speakers: synthetic voices (festival, piper, espeak-ng) and real
recorded utterances from the eval set, each returned as 8 kHz float32 mono.

Every rendering is cached under the cache folder by a hash of (voice, text), so a second run
of the generator only re-codes the channel; piper's sampling noise makes its output differ
between fresh renderings, the cache makes it stable on one machine.
"""

import hashlib
import json
import os
import subprocess
import tempfile

import numpy as np

from . import audio

RATE = audio.RATE

# Where real utterances come from (relative to the repository root).
EVAL_DIR = os.path.join("..", "shared", "eval")


class Voice:
    """One voice from the scenarios' `voices` table."""

    def __init__(self, key, spec):
        self.key = key
        self.engine = spec["engine"]
        self.name = spec["name"]
        self.sex = spec["sex"]
        self.accent = spec["accent"]
        self.real = self.engine == "real"
        self.rate_scale = spec.get("length_scale", 1.0)
        self.weight = spec.get("weight", 1.0)
        # A derived voice: the base voice with pitch and formants shifted (sox `pitch`).
        self.pitch_cents = spec.get("pitch_cents", 0)
        self.spec = spec

    @property
    def label(self):
        shifted = f"@{self.pitch_cents:+d}c" if self.pitch_cents else ""
        return f"{self.engine}:{self.name}{shifted}"

    def describe(self):
        return {"voice": self.label, "sex": self.sex, "accent": self.accent, "real": self.real}


class Synthesizer:
    """Renders text in a voice, with a disk cache."""

    def __init__(self, cache_dir, repo_root):
        self.cache_dir = cache_dir
        self.repo_root = repo_root
        os.makedirs(cache_dir, exist_ok=True)
        self._piper = {}
        self._real_index = None

    def render(self, voice, text):
        key = hashlib.sha256(json.dumps([voice.label, voice.rate_scale, text]).encode()).hexdigest()[:24]
        path = os.path.join(self.cache_dir, f"{key}.npy")
        if os.path.exists(path):
            return np.load(path)
        if voice.engine == "festival":
            samples = self._festival(voice, text)
        elif voice.engine == "piper":
            samples = self._piper_render(voice, text)
        elif voice.engine == "espeak-ng":
            samples = self._espeak(voice, text)
        elif voice.engine == "real":
            samples = self._real(voice, text)
        else:
            raise ValueError(f"unknown engine {voice.engine}")
        if voice.pitch_cents:
            samples = audio.pitch_shift(samples, voice.pitch_cents)
        samples = audio.trim(samples)
        tmp = path + ".tmp.npy"
        np.save(tmp, samples)
        os.replace(tmp, path)
        return samples

    def _festival(self, voice, text):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.wav")
            # Festival reads the text from stdin; its duration stretch slows or quickens the voice.
            stretch = f"(Parameter.set 'Duration_Stretch {voice.rate_scale})"
            subprocess.run(
                ["text2wave", "-eval", f"(voice_{voice.name})", "-eval", stretch, "-o", out],
                input=text.encode(), check=True, capture_output=True,
            )
            return audio.load_resampled(out)

    def _espeak(self, voice, text):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.wav")
            speed = int(160 / voice.rate_scale)
            pitch = str(voice.spec.get("pitch", 50))
            subprocess.run(["espeak-ng", "-v", voice.name, "-s", str(speed), "-p", pitch, "-w", out, text],
                           check=True, capture_output=True)
            return audio.load_resampled(out)

    def _piper_render(self, voice, text):
        from piper import PiperVoice, SynthesisConfig  # only in the generator's venv

        if voice.name not in self._piper:
            module = __import__(voice.spec["package"])
            model = module.model_path()
            audio.check_sha256(model, voice.spec["sha256"])
            self._piper[voice.name] = PiperVoice.load(model, config_path=module.config_path())
        piper_voice = self._piper[voice.name]
        config = SynthesisConfig(length_scale=voice.rate_scale)
        chunks = list(piper_voice.synthesize(text, syn_config=config))
        rate = chunks[0].sample_rate
        samples = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        pause = np.zeros(int(0.25 * rate), dtype=np.float32)
        if len(chunks) > 1:  # sentence chunks: a breath between them
            parts = []
            for c in chunks:
                parts += [c.audio_float_array.astype(np.float32), pause]
            samples = np.concatenate(parts[:-1])
        return audio.resample(samples, rate)

    def _real(self, voice, text):
        """A real utterance whose reference is `text` (the scenario names the clip by its words)."""
        clip = voice.spec["clips"].get(text)
        if clip is None:
            raise ValueError(f"voice {voice.key} has no recorded clip saying {text!r}")
        path = os.path.join(self.repo_root, EVAL_DIR, clip["file"])
        audio.check_sha256(path, clip["sha256"])
        return audio.load_resampled(path)

