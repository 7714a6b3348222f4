"""Turns the hand-written scenarios (benches/calls/scenarios.json) into concrete calls for a seed:
who speaks with which voice, the numbers they read out, the callback they ask for, the channel.

Slots in a script's text, filled per call:
  {agent_name} {customer_name} {company}   names
  {card}      a 16-digit Luhn-valid card number read digit by digit, in groups of four
  {ssn}       a social security number, 3-2-4 digits
  {phone}     a 10-digit phone number   {zip}  a 5-digit zip code   {order}  a 10-digit order number
  {callback}  a day and time to be called back ("tomorrow at ten thirty"); `expect.callback` of
              "{callback}" becomes its local time, resolved against the call's start.
"""

import datetime as dt
import random
import zoneinfo

from .voices import Voice

TIMEZONE = "America/New_York"
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

AGENT_NAMES = {"m": ["Mark", "David", "Sam", "Tom", "Kevin", "Brian"], "f": ["Sarah", "Emily", "Linda", "Karen", "Megan", "Julie"]}
CUSTOMER_NAMES = {"m": ["Robert", "James", "Michael", "William", "Richard", "Joseph"],
                  "f": ["Mary", "Patricia", "Jennifer", "Barbara", "Susan", "Nancy"]}
COMPANIES = ["Acme Solar", "Brightline Energy", "Summit Home Insurance", "Clearwater Windows", "Northstar Health Plans"]

# A callback phrase the customer says, and how to resolve it: (days ahead | weekday, hour, minute).
CALLBACKS = [
    ("tomorrow at ten thirty", ("days", 1), 10, 30),
    ("on Friday around three p.m.", ("weekday", 4), 15, 0),
    ("on Monday at nine in the morning", ("weekday", 0), 9, 0),
    ("tomorrow afternoon at two", ("days", 1), 14, 0),
    ("on Thursday at eleven", ("weekday", 3), 11, 0),
    ("on Wednesday around four thirty in the afternoon", ("weekday", 2), 16, 30),
    ("tomorrow morning at nine fifteen", ("days", 1), 9, 15),
    ("on Tuesday at one p.m.", ("weekday", 1), 13, 0),
]


def spoken_digits(digits, groups):
    """'4111…' read digit by digit, a comma between groups of the given sizes."""
    out, i = [], 0
    for size in groups:
        out.append(" ".join(DIGIT_WORDS[int(d)] for d in digits[i : i + size]))
        i += size
    return ", ".join(out)


def luhn_complete(prefix15):
    total = 0
    for i, d in enumerate(reversed(prefix15)):
        n = int(d)
        if i % 2 == 0:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return prefix15 + str((10 - total % 10) % 10)


def draw_card(rng):
    start = rng.choice(["4", "5", "6011"])
    body = start + "".join(str(rng.randrange(10)) for _ in range(15 - len(start)))
    return luhn_complete(body)


def draw_ssn(rng):
    area = rng.choice([n for n in range(101, 899) if n != 666])
    return f"{area:03d}{rng.randrange(10, 99):02d}{rng.randrange(1000, 9999):04d}"


def draw_started_at(rng):
    """A weekday between Nov 2 and Dec 11, 2026, between 9:00 and 14:59 Eastern."""
    tz = zoneinfo.ZoneInfo(TIMEZONE)
    while True:
        day = dt.date(2026, 11, 2) + dt.timedelta(days=rng.randrange(40))
        if day.weekday() < 5:
            break
    return dt.datetime(day.year, day.month, day.day, rng.randrange(9, 15), rng.randrange(60), tzinfo=tz)


def resolve_callback(started_at, rule, hour, minute):
    """The judge's reading: a weekday is the next one strictly after the call's day."""
    kind, value = rule
    day = started_at.date()
    if kind == "days":
        day += dt.timedelta(days=value)
    else:
        ahead = (value - day.weekday()) % 7 or 7
        day += dt.timedelta(days=ahead)
    return f"{day.isoformat()} {hour:02d}:{minute:02d}"


class Call:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def load_voices(spec):
    return {key: Voice(key, v) for key, v in spec.items()}


def cast_call(scenario, voices, pools, rng, used_count):
    """Chooses voices for the scenario's parties: distinct, respecting `same_sex`/`mixed_sex`,
    preferring the voices used least so far for their weight (so every voice gets its share). A role's
    cast is a list of voices or the name of one of the shared pools."""
    cast = {}
    for role in ("agent", "customer", "supervisor"):
        if role not in scenario["cast"]:
            continue
        pool = scenario["cast"][role]
        pool = pools[pool] if isinstance(pool, str) else pool
        options = [v for v in dict.fromkeys(pool) if v not in cast.values()]
        if role == "customer" and scenario.get("same_sex"):
            options = [v for v in options if voices[v].sex == voices[cast["agent"]].sex] or options
        if role == "customer" and scenario.get("mixed_sex"):
            options = [v for v in options if voices[v].sex != voices[cast["agent"]].sex] or options
        # A voice's load is its calls so far over its weight: the robotic espeak voices weigh less.
        load = {v: used_count.get(v, 0) / voices[v].weight for v in options}
        least = min(load.values())
        choice = rng.choice([v for v in options if load[v] == least])
        used_count[choice] = used_count.get(choice, 0) + 1
        cast[role] = choice
    return cast


def instantiate(scenario, call_id, split, spec, voices, seed, used_count):
    rng = random.Random(f"{seed}:{call_id}:{scenario['name']}")
    cast = cast_call(scenario, voices, spec["pools"], rng, used_count)
    ivr_voice = spec["ivr_voice"]
    started_at = draw_started_at(rng)
    phrase, rule, hour, minute = rng.choice(CALLBACKS)
    card, ssn = draw_card(rng), draw_ssn(rng)
    phone = rng.choice(["617", "312", "415", "713", "212"]) + "555" + f"{rng.randrange(10000):04d}"
    zip_code = f"{rng.randrange(10000, 99999):05d}"
    order = f"{rng.randrange(10**9, 10**10)}"
    slots = {
        "agent_name": rng.choice(AGENT_NAMES[voices[cast["agent"]].sex]),
        "customer_name": rng.choice(CUSTOMER_NAMES[voices[cast["customer"]].sex]),
        "supervisor_name": rng.choice(AGENT_NAMES[voices[cast["supervisor"]].sex]) if "supervisor" in cast else "",
        "company": scenario.get("company") or rng.choice(COMPANIES),
        "card": spoken_digits(card, (4, 4, 4, 4)),
        "ssn": spoken_digits(ssn, (3, 2, 4)),
        "phone": spoken_digits(phone, (3, 3, 4)),
        "zip": spoken_digits(zip_code, (5,)),
        "order": spoken_digits(order, (3, 3, 4)),
        "callback": phrase,
    }
    script = []
    for item in scenario["script"]:
        filled = {}
        for k, v in item.items():
            filled[k] = v.format(**slots) if isinstance(v, str) else v
        script.append(filled)
    expect = dict(scenario["expect"])
    expect["flags"] = sorted(expect["flags"])
    expect["callback"] = {"local": resolve_callback(started_at, rule, hour, minute)} if expect.get("callback") else None
    codecs = ["ulaw", "ulaw", "gsm", "alaw"]
    agent_level = rng.uniform(-25, -20)
    customer_level = agent_level - rng.uniform(2, 9) * rng.choice([1, 1, -0.5])
    channels = [
        {"codec": rng.choice(codecs), "gain_db": 0.0, "noise_db": rng.uniform(-64, -54)},
        {"codec": rng.choice(codecs), "gain_db": 0.0, "noise_db": rng.uniform(-60, -46)},
    ]
    return Call(
        id=call_id,
        scenario=scenario["name"],
        kinds=scenario.get("kinds", []),
        split=split,
        started_at=started_at,
        voices={role: voices[v] for role, v in cast.items()},
        ivr_voice=voices[ivr_voice],
        speech_level={"agent": agent_level, "supervisor": agent_level + rng.uniform(-3, 3), "customer": customer_level},
        channels=channels,
        mono_codec=rng.choice(["ulaw", "gsm"]),
        mono_format=scenario.get("mono_format") or ("mp3" if rng.random() < 0.3 else "wav"),
        script=script,
        expect=expect,
        numbers={"card": card, "ssn": ssn, "phone": phone, "zip": zip_code, "order": order},
        seed=rng.randrange(2**32),
    )
