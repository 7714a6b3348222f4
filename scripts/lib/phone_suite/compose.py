"""Lays one call's script out in time on the two lines (agent = channel 0, customer = channel 1),
then passes each line through the telephone channel and mixes the mono signal.

Timing of a script item (seconds; defaults drawn from the call's seed):
- a turn starts `gap` after the last turn or event ended;
- `"overlap": s` starts it s before the previous turn ends (an interruption);
- `"during": f` starts it at fraction f of the other party's previous turn, without moving the
  clock (a back-channel: "uh-huh" while the other talks);
- events (`ringback`, `hold_music`, `ivr`, `dtmf`, `silence`) take their own time; `line_noise`
  lies under whatever comes next and does not move the clock.
"""

import numpy as np

from . import audio

AGENT_LINE, CUSTOMER_LINE = 0, 1
LINE_OF_SPEAKER = {"agent": AGENT_LINE, "supervisor": AGENT_LINE, "customer": CUSTOMER_LINE}
SPEAKERS = tuple(LINE_OF_SPEAKER)
# A pause inside a turn at least this long splits its RTTM segment (sentence breaks, the groups
# of a card number), so the truth's speech is speech; shorter pauses stay inside.
RTTM_MIN_PAUSE_S = 0.5
# A turn's loudest sample: below full scale, so the codecs never clip a voice.
PEAK = 0.7

# Which line carries a sound that is not a party's voice: what the far end's network sends is
# on the customer's line (ringback), what the call center's system plays is on the agent's.
LINE_OF_EVENT = {"ringback": CUSTOMER_LINE, "hold_music": AGENT_LINE, "ivr": AGENT_LINE,
                 "dtmf": CUSTOMER_LINE, "line_noise": CUSTOMER_LINE}


class Placed:
    """A sound placed on a line."""

    def __init__(self, line, start, samples):
        self.line = line
        self.start = start
        self.samples = samples

    @property
    def end(self):
        return self.start + len(self.samples) / audio.RATE


def lay_out(call, synth, rng):
    """Places the script's turns and events; returns (placed sounds, turns, events, the RTTM's
    speech segments (speaker, start, end), duration)."""
    placed, turns, events, segments = [], [], [], []
    clock = rng.uniform(0.4, 1.2)  # the recording starts a little before anyone speaks
    previous = None  # the last turn that is not a back-channel, of either party
    for item in call.script:
        if "event" in item:
            kind = item["event"]
            start = clock + item.get("gap", rng.uniform(0.2, 0.6))
            if kind == "silence":
                events.append({"kind": "silence", "start": r2(clock), "end": r2(start + item["seconds"])})
                clock = start + item["seconds"]
                continue
            samples = event_sound(kind, item, synth, call, rng)
            sound = Placed(LINE_OF_EVENT[kind], start, samples)
            placed.append(sound)
            event = {"kind": kind, "start": r2(start), "end": r2(sound.end), "channel": sound.line}
            for extra in ("digits", "text"):
                if extra in item:
                    event[extra] = item[extra]
            events.append(event)
            if kind != "line_noise":
                clock = sound.end
            continue
        speaker = next(k for k in SPEAKERS if k in item)
        text = item[speaker]
        samples = synth.render(call.voices[speaker], text)
        samples = audio.normalize_rms(samples, call.speech_level[speaker] + rng.uniform(-1.5, 1.5))
        samples = audio.limit_peak(samples, PEAK)
        if "during" in item:
            other = previous if previous is not None and previous["speaker"] != speaker else None
            if other is None:
                raise ValueError(f"{call.id}: a back-channel needs the other party's turn before it")
            start = other["start"] + item["during"] * (other["end"] - other["start"])
        elif "overlap" in item:
            start = previous["end"] - item["overlap"]
        else:
            start = clock + item.get("gap", rng.uniform(0.25, 0.85))
        sound = Placed(LINE_OF_SPEAKER[speaker], start, samples)
        placed.append(sound)
        turn = {"speaker": speaker, "channel": sound.line, "start": r2(start), "end": r2(sound.end), "text": text}
        turns.append(turn)
        segments.extend((speaker, start + a, start + b) for a, b in audio.speech_spans(samples, RTTM_MIN_PAUSE_S))
        clock = max(clock, sound.end)
        if "during" not in item:
            previous = turn
    duration = clock + rng.uniform(0.5, 1.5)
    turns.sort(key=lambda t: t["start"])
    segments.sort(key=lambda seg: seg[1])
    return placed, turns, events, segments, duration


def event_sound(kind, item, synth, call, rng):
    if kind == "ringback":
        return audio.ringback(item["seconds"])
    if kind == "hold_music":
        return audio.normalize_rms(audio.hold_music(item["seconds"], rng), -24.0)
    if kind == "ivr":
        return audio.normalize_rms(synth.render(call.ivr_voice, item["text"]), -20.0)
    if kind == "dtmf":
        return audio.dtmf(item["digits"], rng)
    if kind == "line_noise":
        return audio.crackle(item["seconds"], rng)
    raise ValueError(f"unknown event {kind}")


def r2(x):
    return round(float(x), 2)


def render_lines(placed, duration, call, rng):
    """Mixes each line and passes it through the telephone channel."""
    n = int(round(duration * audio.RATE))
    lines = [np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)]
    for sound in placed:
        i = int(round(sound.start * audio.RATE))
        lines[sound.line][i : i + len(sound.samples)] += sound.samples[: n - i]
    coded = []
    for line, channel in zip(lines, call.channels):
        line = line * 10 ** (channel["gain_db"] / 20)
        line = line + audio.line_noise(n, rng, channel["noise_db"])
        line = audio.band_limit(line)
        line = audio.codec_round_trip(line, channel["codec"])
        coded.append(line)
    return coded


def mono_mix(lines, call):
    """What a single-channel recorder hears: both coded lines summed, coded once more."""
    mix = lines[0] + lines[1]
    peak = np.max(np.abs(mix))
    if peak > 0.98:
        mix = mix * (0.98 / peak)
    return audio.codec_round_trip(mix, call.mono_codec)
