"""scripts/phone-suite: generates the phone-call suite (or the committed fixtures) from
benches/calls/scenarios.json. See benches/calls/README.md."""

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import audio, checks, compose, scenarios
from .voices import Synthesizer

GENERATOR = "phone-suite 1"
# LAME's encoder delay plus the MP3 decoder's at 8 kHz: 1105 samples, measured with sox.
MP3_DELAY_S = 0.138
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SCENARIOS = os.path.join(REPO, "benches", "calls", "scenarios.json")


def main():
    parser = argparse.ArgumentParser(prog="scripts/phone-suite", description=__doc__)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--out", default=None, help="default .local/phone-suite (fixtures/calls with --fixtures)")
    parser.add_argument("--only", nargs="*", default=None, help="call ids to generate (the manifest lists only them)")
    parser.add_argument("--fixtures", action="store_true", help="the short committed calls of fixtures/calls")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cache", default=os.path.join(REPO, ".local", "phone-suite-cache"))
    args = parser.parse_args()
    default_out = ("fixtures", "calls") if args.fixtures else (".local", "phone-suite")
    out = args.out or os.path.join(REPO, *default_out)
    os.makedirs(out, exist_ok=True)

    with open(SCENARIOS) as f:
        spec = json.load(f)
    calls = plan(spec, args.seed, args.fixtures)
    if args.only:
        missing = set(args.only) - {c.id for c in calls}
        if missing:
            sys.exit(f"no such calls: {' '.join(sorted(missing))}")
        calls = [c for c in calls if c.id in args.only]
    print(f"phone-suite: {len(calls)} calls, seed {args.seed}, into {out}", flush=True)

    began = time.time()
    results, failures = [], []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(build_call, call, out, args.cache, args.fixtures) for call in calls]
        for i, (call, future) in enumerate(zip(calls, futures), 1):
            try:
                entry, seconds = future.result()
            except Exception as error:  # report every broken call, not just the first
                failures.append(f"{call.id} ({call.scenario}): {error}")
                print(f"[{i:2d}/{len(calls)}] {call.id} FAILED: {error}", flush=True)
                continue
            results.append(entry)
            print(f"[{i:2d}/{len(calls)}] {entry['id']} {entry['split']:7s} {entry['scenario']:32s} "
                  f"{entry['duration']:6.1f} s audio  {seconds:5.1f} s", flush=True)
    if failures:
        sys.exit("phone-suite: no manifest written; these calls failed:\n  " + "\n  ".join(failures))
    manifest = {
        "suite": "phone-calls",
        "seed": args.seed,
        "generator": GENERATOR,
        "timezone": scenarios.TIMEZONE,
        "calls": results,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    audio_s = sum(c["duration"] for c in results)
    print(f"phone-suite: {len(results)} calls, {audio_s / 60:.1f} min of audio in {time.time() - began:.0f} s; "
          f"{out}/manifest.json", flush=True)


def plan(spec, seed, fixtures):
    """The calls of the suite (or the fixtures) for a seed, in id order."""
    voices = scenarios.load_voices(spec["voices"])
    used = {}
    calls = []
    if fixtures:
        for i, scenario in enumerate(spec["fixtures"], 1):
            calls.append(scenarios.instantiate(scenario, f"f{i:02d}", "tune", spec, voices, seed, used))
        return calls
    number = 0
    for scenario in spec["scenarios"]:
        for k in range(scenario["calls"]):
            number += 1
            calls.append(scenarios.instantiate(scenario, f"c{number:03d}", "tune", spec, voices, seed, used))
    # About a third held out: walking the scenarios in order, each holds out as many of its calls
    # as keep the running share at a third (one of three, one of two calls every other time),
    # which ones drawn from the seed.
    draw = random.Random(seed)
    by_scenario = {}
    for call in calls:
        by_scenario.setdefault(call.scenario, []).append(call)
    seen = held = 0
    for group in by_scenario.values():
        seen += len(group)
        take = min(len(group), max(0, round(seen / 3) - held))
        for call in draw.sample(group, take):
            call.split = "holdout"
        held += take
    return calls


def build_call(call, out, cache, fixtures):
    began = time.time()
    rng = np.random.default_rng(call.seed)
    synth = Synthesizer(cache, REPO)
    placed, turns, events, segments, duration = compose.lay_out(call, synth, rng)
    checks.check_call(call, turns, duration)
    lines = compose.render_lines(placed, duration, call, rng)
    mono = compose.mono_mix(lines, call)
    for stale in (f"{call.id}.mono.wav", f"{call.id}.mono.mp3"):  # a mix an earlier scenario wrote
        if os.path.exists(os.path.join(out, stale)):
            os.remove(os.path.join(out, stale))
    stereo_name = f"{call.id}.stereo.wav"
    audio.write_wav(os.path.join(out, stereo_name), lines, "ulaw" if fixtures else "pcm16")
    if call.mono_format == "mp3":
        mono_name = f"{call.id}.mono.mp3"
        audio.write_mp3(os.path.join(out, mono_name), mono, 16)
    else:
        mono_name = f"{call.id}.mono.wav"
        audio.write_wav(os.path.join(out, mono_name), [mono], "ulaw" if fixtures else "pcm16")
    rttm_name = f"{call.id}.rttm"
    with open(os.path.join(out, rttm_name), "w") as f:
        for speaker, start, end in segments:
            f.write(f"SPEAKER {call.id} 1 {start:.2f} {end - start:.2f} <NA> <NA> {speaker} <NA> <NA>\n")
    duration = len(lines[0]) / audio.RATE
    entry = {
        "id": call.id,
        "split": call.split,
        "scenario": call.scenario,
        "kinds": call.kinds,
        "started_at": call.started_at.isoformat(),
        "duration": round(duration, 2),
        "stereo": stereo_name,
        "mono": mono_name,
        # An MP3 decoder that does not trim the encoder's padding (no gapless playback) hears the
        # audio this much later than the truth's times.
        "mono_delay": MP3_DELAY_S if call.mono_format == "mp3" else 0.0,
        "agent_channel": compose.AGENT_LINE,
        "rttm": rttm_name,
        "speakers": {role: v.describe() for role, v in call.voices.items()},
        "channel": {"agent_line": call.channels[0], "customer_line": call.channels[1], "mono_codec": call.mono_codec},
        "turns": turns,
        "events": events,
        "spoken_numbers": checks.spoken_numbers(call, turns),
        "expect": call.expect,
    }
    for line in entry["channel"].values():
        if isinstance(line, dict):
            line["noise_db"] = round(line["noise_db"], 1)
    return entry, time.time() - began


if __name__ == "__main__":
    main()
