"""Sample-level helpers: resampling, the telephone channel's codecs through sox, tones, music,
noise and file writing. Everything is float32 mono at RATE unless said otherwise."""

import hashlib
import subprocess
import wave

import numpy as np

RATE = 8000

_RAW_F32 = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1"]


def _sox(samples, rate_in, args_out, effects, rate_out=RATE):
    """Pipes float samples through sox with `effects`, reading back float samples."""
    cmd = ["sox", "-R", "-V1", *_RAW_F32, "-r", str(rate_in), "-", *args_out, *effects]
    out = subprocess.run(cmd, input=np.asarray(samples, dtype=np.float32).tobytes(), capture_output=True, check=True)
    return np.frombuffer(out.stdout, dtype=np.float32).copy()


def resample(samples, rate):
    """To RATE with sox's very-high-quality resampler."""
    if rate == RATE:
        return np.asarray(samples, dtype=np.float32)
    return _sox(samples, rate, [*_RAW_F32, "-r", str(RATE), "-"], ["rate", "-v"])


def load_resampled(path):
    """Any file sox reads, as RATE mono float."""
    cmd = ["sox", "-R", "-V1", path, *_RAW_F32, "-r", str(RATE), "-", "remix", "-", "rate", "-v"]
    out = subprocess.run(cmd, capture_output=True, check=True)
    return np.frombuffer(out.stdout, dtype=np.float32).copy()


def pitch_shift(samples, cents):
    """Shifts pitch and formants together by `cents`, keeping the tempo (sox's WSOLA `pitch`)."""
    return _sox(samples, RATE, [*_RAW_F32, "-r", str(RATE), "-"], ["pitch", str(cents)])


def trim(samples, threshold_db=-40.0, pad=0.03):
    """Cuts leading and trailing silence (frames below `threshold_db` of the peak), keeping `pad` s."""
    if len(samples) == 0:
        return samples
    frame = RATE // 100
    n = len(samples) // frame
    if n == 0:
        return samples
    energy = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(energy > energy.max() * 10 ** (threshold_db / 20))[0]
    if len(loud) == 0:
        return samples[:0]
    start = max(0, loud[0] * frame - int(pad * RATE))
    end = min(len(samples), (loud[-1] + 1) * frame + int(pad * RATE))
    return samples[start:end]


def speech_spans(samples, min_pause, threshold_db=-40.0):
    """(start, end) seconds of the stretches of a trimmed utterance, split where it pauses for at
    least `min_pause` s (frames below `threshold_db` of its peak), as in a forced alignment."""
    frame = RATE // 100
    n = len(samples) // frame
    if n == 0:
        return [(0.0, len(samples) / RATE)]
    energy = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    quiet = energy <= energy.max() * 10 ** (threshold_db / 20)
    spans, start, run = [], 0.0, 0
    for i, q in enumerate(quiet):
        if q:
            run += 1
            continue
        if run * 0.01 >= min_pause and i - run > 0:
            spans.append((start, (i - run) * 0.01))
            start = i * 0.01
        run = 0
    spans.append((start, len(samples) / RATE))
    return spans


def normalize_rms(samples, dbfs):
    rms = np.sqrt(np.mean(samples**2)) if len(samples) else 0.0
    if rms < 1e-9:
        return samples
    return samples * (10 ** (dbfs / 20) / rms)


def limit_peak(samples, peak):
    """Scales a sound down so its loudest sample is at most `peak`."""
    top = float(np.max(np.abs(samples))) if len(samples) else 0.0
    return samples * (peak / top) if top > peak else samples


def band_limit(samples, low=300, high=3400):
    """The telephone band: sox's windowed-sinc band-pass."""
    return _sox(samples, RATE, [*_RAW_F32, "-r", str(RATE), "-"], ["sinc", "-n", "256", f"{low}-{high}"])


def codec_round_trip(samples, codec):
    """Encodes and decodes with a telephone codec: 'ulaw' (G.711 µ-law), 'alaw' or 'gsm' (GSM 06.10)."""
    if codec in ("ulaw", "alaw"):
        encoded = subprocess.run(
            ["sox", "-R", "-V1", *_RAW_F32, "-r", str(RATE), "-", "-t", "raw", "-e", "u-law" if codec == "ulaw" else "a-law",
             "-b", "8", "-c", "1", "-"],
            input=np.clip(samples, -1, 1).astype(np.float32).tobytes(), capture_output=True, check=True).stdout
        fmt = ["-t", "raw", "-e", "u-law" if codec == "ulaw" else "a-law", "-b", "8", "-c", "1", "-r", str(RATE)]
    elif codec == "gsm":
        encoded = subprocess.run(
            ["sox", "-R", "-V1", *_RAW_F32, "-r", str(RATE), "-", "-t", "gsm", "-"],
            input=np.clip(samples, -1, 1).astype(np.float32).tobytes(), capture_output=True, check=True).stdout
        fmt = ["-t", "gsm", "-r", str(RATE), "-c", "1"]
    else:
        raise ValueError(codec)
    decoded = subprocess.run(["sox", "-R", "-V1", *fmt, "-", *_RAW_F32, "-"], input=encoded, capture_output=True, check=True).stdout
    out = np.frombuffer(decoded, dtype=np.float32).copy()
    if len(out) < len(samples):  # GSM frames are 160 samples: the tail may be cut short
        out = np.concatenate([out, np.zeros(len(samples) - len(out), dtype=np.float32)])
    return out[: len(samples)]


def check_sha256(path, expected):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise SystemExit(f"{path}: sha256 {digest.hexdigest()} is not the pinned {expected}")


# --- sounds that are not speech ---------------------------------------------------------------

def tone(freqs, seconds, level_db=-14.0):
    t = np.arange(int(seconds * RATE)) / RATE
    wave_ = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    ramp = min(len(t) // 2, int(0.005 * RATE))
    env = np.ones(len(t))
    if ramp:
        env[:ramp] = np.linspace(0, 1, ramp)
        env[-ramp:] = np.linspace(1, 0, ramp)
    return (wave_ * env * 10 ** (level_db / 20) * np.sqrt(2)).astype(np.float32)


def ringback(seconds):
    """The US ringback: 440 + 480 Hz, 2 s on, 4 s off."""
    out = np.zeros(int(seconds * RATE), dtype=np.float32)
    for start in np.arange(0, seconds, 6.0):
        burst = tone([440, 480], min(2.0, seconds - start), -16.0)
        i = int(start * RATE)
        out[i : i + len(burst)] = burst[: len(out) - i]
    return out


DTMF = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336),
    "6": (770, 1477), "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209),
    "0": (941, 1336), "#": (941, 1477),
}


def dtmf(digits, rng):
    """Key presses: 90–160 ms tones with 120–400 ms between them."""
    parts = []
    for d in digits:
        parts.append(tone(DTMF[d], rng.uniform(0.09, 0.16), -10.0))
        parts.append(np.zeros(int(rng.uniform(0.12, 0.4) * RATE), dtype=np.float32))
    return np.concatenate(parts[:-1])


def hold_music(seconds, rng):
    """A synthesized loop: a I–vi–IV–V progression of soft chords under a plucked melody."""
    base = rng.choice([196.0, 220.0, 246.94, 261.63])
    bpm = rng.uniform(84, 112)
    beat = 60.0 / bpm
    progression = [(0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14)]
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 14, 16]
    n = int(seconds * RATE)
    out = np.zeros(n, dtype=np.float32)
    t_bar = 4 * beat
    bar = 0
    while bar * t_bar < seconds:
        chord = progression[bar % 4]
        start = int(bar * t_bar * RATE)
        length = min(int(t_bar * RATE), n - start)
        t = np.arange(length) / RATE
        pad = sum(np.sin(2 * np.pi * base * 2 ** (s / 12) * t) for s in chord) / 3
        env = np.minimum(1, t / 0.15) * np.exp(-t / (t_bar * 1.5))
        out[start : start + length] += (0.10 * pad * env).astype(np.float32)
        for b in range(8):  # eighth-note melody
            note_start = start + int(b * beat / 2 * RATE)
            if note_start >= n or rng.random() < 0.25:
                continue
            f = 2 * base * 2 ** (scale[rng.integers(len(scale))] / 12)
            note_len = min(int(beat / 2 * RATE), n - note_start)
            tn = np.arange(note_len) / RATE
            note = (np.sin(2 * np.pi * f * tn) + 0.3 * np.sin(4 * np.pi * f * tn)) * np.exp(-tn / 0.18)
            out[note_start : note_start + note_len] += (0.12 * note).astype(np.float32)
        bar += 1
    return out


def line_noise(n, rng, level_db):
    """Hiss: white noise shaped a little toward low frequencies, at `level_db` dBFS RMS."""
    white = rng.standard_normal(n + 1).astype(np.float32)
    shaped = white[1:] + 0.6 * white[:-1]
    return normalize_rms(shaped, level_db).astype(np.float32)


def crackle(seconds, rng, level_db=-26.0):
    """A burst of static on a bad line: noise gated by random clicks."""
    n = int(seconds * RATE)
    noise = rng.standard_normal(n).astype(np.float32)
    gate = (rng.random(n // 40 + 1) < 0.35).repeat(40)[:n]
    return normalize_rms(noise * gate, level_db).astype(np.float32)


# --- files -------------------------------------------------------------------------------------

def to_int16(samples):
    return (np.clip(samples, -1, 32767 / 32768) * 32768).round().astype(np.int16)


def write_wav(path, channels, encoding="pcm16"):
    """Writes channels (list of equal-length float arrays) as 8 kHz WAV: PCM 16-bit or µ-law."""
    data = np.stack([to_int16(c) for c in channels], axis=1)
    if encoding == "pcm16":
        with wave.open(path, "wb") as w:
            w.setnchannels(len(channels))
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(data.tobytes())
    elif encoding == "ulaw":
        subprocess.run(["sox", "-R", "-V1", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", str(len(channels)),
                        "-r", str(RATE), "-", "-e", "u-law", "-b", "8", path], input=data.tobytes(), check=True)
    else:
        raise ValueError(encoding)


def write_mp3(path, samples, kbps):
    """Mono MP3 at 8 kHz (MPEG-2.5) through sox's lame encoder."""
    subprocess.run(["sox", "-R", "-V1", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(RATE), "-",
                    "-C", str(kbps), path], input=to_int16(samples).tobytes(), check=True)
