"""Checks that a laid-out call agrees with its expectations where timing decides the truth (the
disclosure's 30-second window, dead air), and lists the numbers said in it."""

import os
import re
import tomllib

from . import scenarios

RULEBOOK = os.path.join(os.path.dirname(__file__), "..", "..", "..", "judge", "src", "default_rulebook.toml")
# Margins around the rulebook's windows, so ASR timing cannot turn the truth over.
DISCLOSURE_MARGIN_S = 3.0
DEAD_AIR_MARGIN_S = 3.0


def _rules():
    with open(RULEBOOK, "rb") as f:
        return {r["id"]: r for r in tomllib.load(f)["rules"]}


RULES = _rules()


def words(text):
    return " ".join(re.findall(r"[a-z']+", text.lower().replace("-", " ")))


def check_call(call, turns, duration):
    flags = call.expect["flags"]
    disclosure = RULES["recording-disclosure-missing"]
    window = disclosure["within_seconds"]
    said = [t for t in turns if t["speaker"] == disclosure["by"]
            and any(p in words(t["text"]) for p in disclosure["phrases"])]
    in_time = [t for t in said if t["end"] <= window - DISCLOSURE_MARGIN_S]
    late_only = all(t["start"] >= window + DISCLOSURE_MARGIN_S for t in said)
    if "recording-disclosure-missing" in flags:
        if not late_only:
            raise ValueError(f"{call.id}: expects no disclosure in {window} s, but the agent says one at "
                             f"{said[0]['start']:.1f} s")
    elif not in_time:
        raise ValueError(f"{call.id}: the agent's disclosure does not end before {window - DISCLOSURE_MARGIN_S} s "
                         f"({[(t['start'], t['end']) for t in said]})")

    limit = RULES["dead-air"]["max_seconds"]
    longest = longest_quiet(turns, duration)
    if "dead-air" in flags and longest <= limit + DEAD_AIR_MARGIN_S:
        raise ValueError(f"{call.id}: expects dead air, but the longest quiet is {longest:.1f} s")
    if "dead-air" not in flags and longest >= limit - DEAD_AIR_MARGIN_S:
        raise ValueError(f"{call.id}: a quiet of {longest:.1f} s is close to the {limit} s dead-air rule")


def longest_quiet(turns, duration):
    spans = sorted((t["start"], t["end"]) for t in turns)
    longest, reached = 0.0, 0.0
    for start, end in spans:
        longest = max(longest, start - reached)
        reached = max(reached, end)
    return max(longest, duration - reached)


def spoken_numbers(call, turns):
    """Each slot number read out in a turn: its kind, digits and who said it."""
    forms = {
        "card": scenarios.spoken_digits(call.numbers["card"], (4, 4, 4, 4)),
        "ssn": scenarios.spoken_digits(call.numbers["ssn"], (3, 2, 4)),
        "phone": scenarios.spoken_digits(call.numbers["phone"], (3, 3, 4)),
        "zip": scenarios.spoken_digits(call.numbers["zip"], (5,)),
        "order": scenarios.spoken_digits(call.numbers["order"], (3, 3, 4)),
    }
    found = []
    for t in turns:
        for kind, form in forms.items():
            if form in t["text"]:
                found.append({"kind": kind, "digits": call.numbers[kind], "speaker": t["speaker"], "start": t["start"]})
    return found
