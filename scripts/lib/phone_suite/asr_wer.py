"""Scores `callscript transcribe --format json` transcripts of the phone-call suite against its
manifest: word error rate of each call against its turns' text (in order of start): a mono
transcript whole, a stereo one per line (each channel's segments against the turns of that
channel, so how two lines' segments interleave in time costs nothing), and the words the transcript puts inside non-speech events
(hold music, ringback, DTMF, silence: hallucinations). A development tool for choosing models and
decoding settings (issue 21); `scripts/bench calls` measures the product's lanes.

    python3 scripts/lib/phone_suite/asr_wer.py MANIFEST --mix stereo DIR [DIR...] [--times]

Each DIR holds one run (a model and settings): `<id>.<mix>.json` per call (or transcribe's
`--output-dir` names, `<id>.<mix>.json` for `<id>.<mix>.wav`), and optionally `times.tsv`
(`id TAB mix TAB wall seconds [TAB load average TAB CPU seconds]`) for the speed columns (audio
seconds per wall second, per CPU second). `--terms "Acme Solar,..."` adds how many of the
phrases' mentions in the turns the transcript has (what a vocabulary prompt is for). `numbers`:
how many of the numbers read out (`spoken_numbers`: cards, SSNs, phone, zip, order numbers) the
transcript has with every digit right, in a row. Calls missing from any DIR are left out of
every DIR's figures, so the rows compare the same calls. Totals sum errors and reference words over
calls (not a mean of per-call rates), per split (tune, holdout).

Normalization, the same on both sides: lower case; punctuation gone (hyphens split, an apostrophe
inside a word stays); `$5` is `5 dollars`, `%` is `percent`, `ok` is `okay`; then every number,
written in digits (`4111`, `10:30`, `3rd`) or in words (`forty two`, `ten thirty`, `third`, read
digit by digit as `four one one one`), becomes its decimal digits, one word each. So `$40` and
`forty dollars` both read `4 0 dollars`, a card number read out and written as digits compare digit
by digit, and a number costs as many errors as it has wrong digits.

Hallucinated words: words of the transcript that match no reference word (insertions of the
alignment) and whose time falls inside a hold_music, ringback, dtmf or silence event; a segment's
words share its span evenly (transcripts have segment times only). Counting insertions only keeps
a right word of a long segment that overlaps an event from counting. The column `in ev.` counts
every word whose time falls inside such an event, inserted or not (the suite's literal measure).
"""

import argparse
import json
import os
import re
import sys

NON_SPEECH = ("hold_music", "ringback", "dtmf", "silence")

UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}
ORDINALS = {w: i for i, w in enumerate(
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth".split()) if i >= 1}
ORDINALS.update({w: 10 * i for i, w in enumerate(
    "_ _ twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth".split()) if i >= 2})
SCALES = {"hundred": 100, "thousand": 1000}


def tokens(text):
    """Lower-case words without punctuation, as worker/src/wer.rs `normalize`, with `$`, `%` spelled."""
    text = re.sub(r"\$\s?(\d[\d,]*)(\.00\b)?", r"\1 dollars ", text)
    text = text.replace("%", " percent ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<=\d)[:.](?=\d)", " ", text)  # 10:30 -> 10 30, 3.5 -> 3 5
    text = re.sub(r"[’ʼ]", "'", text.lower())
    words = []
    for raw in re.findall(r"[\w']+", text):
        word = raw.strip("'").replace("_", "")
        if word:
            words.append(word)
    return words


def number_words(words):
    """Every number, in digits or in words, as its decimal digits (one word per digit)."""
    out, i = [], 0
    while i < len(words):
        word = words[i]
        match = re.fullmatch(r"(\d+)(st|nd|rd|th|s)?", word)
        if match:
            out.extend(match.group(1))
            i += 1
            continue
        value, i = spoken_number(words, i)
        if value is None:
            out.append({"ok": "okay"}.get(word, word))
            i += 1
        else:
            out.extend(str(value))
    # "p.m." / "a.m." (two words by now) as one, as "pm" / "am".
    joined = []
    for word in out:
        if word == "m" and joined and joined[-1] in ("a", "p"):
            joined[-1] += "m"
        else:
            joined.append(word)
    return joined


def spoken_number(words, i):
    """The number spelled from words[i] on (`forty two`, `two hundred and five`, `nineteen`):
    (value, next index), or (None, i). Single digits in a row stay separate numbers (read digit by
    digit), and `a`/`and` only join inside hundreds."""
    def below_hundred(j):
        w = words[j] if j < len(words) else None
        if w in TENS:
            nxt = words[j + 1] if j + 1 < len(words) else None
            if nxt in UNITS and 0 < UNITS[nxt] < 10:
                return TENS[w] + UNITS[nxt], j + 2
            if nxt in ORDINALS and ORDINALS[nxt] < 10:
                return TENS[w] + ORDINALS[nxt], j + 2
            return TENS[w], j + 1
        if w in UNITS:
            return UNITS[w], j + 1
        if w in ORDINALS:
            return ORDINALS[w], j + 1
        return None, j

    value, j = below_hundred(i)
    if value is None:
        return None, i
    total = 0
    while j < len(words) and words[j] in SCALES and value < 1000:
        total += value * SCALES[words[j]]
        j += 1
        k = j + 1 if j < len(words) and words[j] == "and" else j
        rest, after = below_hundred(k)
        if rest is None:
            return total, j
        value, j = rest, after
    return total + value, j


def normalize(text):
    return number_words(tokens(text))


def align(ref, hyp):
    """Levenshtein over words: (substitutions + deletions + insertions, the indices of the
    hypothesis words that are insertions, i.e. match no reference word)."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        cost[i][0] = i
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]), cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    inserted, i, j = [], n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            inserted.append(j - 1)
            j -= 1
    return cost[n][m], inserted


def call_errors(call, transcript, mix):
    """(errors, reference words, words in events, hallucinated words) of a call: each channel of a stereo
    transcript against its own line's turns (the order of words across lines is no recognition
    error), a mono one whole. A hallucinated word is an inserted one (it matches no reference
    word) whose time, its segment's span shared evenly among the segment's words, falls inside a
    hold_music, ringback, dtmf or silence event (shifted by `mono_delay` on a mono mix)."""
    delay = call.get("mono_delay", 0.0) if mix == "mono" else 0.0
    spans = [(e["start"] + delay, e["end"] + delay) for e in call["events"] if e["kind"] in NON_SPEECH]
    channels = transcript["channels"]
    if len(channels) == 1:
        pairs = [(call["turns"], channels[0]["segments"])]
    else:
        pairs = [([t for t in call["turns"] if t["channel"] == ch["channel"]], ch["segments"]) for ch in channels]
    errors = words = in_events = hallucinated = 0
    for turns, segs in pairs:
        ref = normalize(" ".join(t["text"] for t in sorted(turns, key=lambda t: t["start"])))
        hyp, times = [], []
        for seg in sorted(segs, key=lambda s: s["start"]):
            seg_words = normalize(seg["text"])
            hyp += seg_words
            times += [seg["start"] + (k + 0.5) * (seg["end"] - seg["start"]) / len(seg_words) for k in range(len(seg_words))]
        e, inserted = align(ref, hyp)
        errors, words = errors + e, words + len(ref)
        inside = [any(a <= t < b for a, b in spans) for t in times]
        in_events += sum(inside)
        hallucinated += sum(inside[k] for k in inserted)
    return errors, words, in_events, hallucinated


def transcript_path(directory, call, mix):
    for name in (f"{call['id']}.{mix}.json", os.path.splitext(call[mix])[0] + ".json", call[mix] + ".json"):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            return path
    return None


def run_times(directory, mix):
    """{call id: (wall seconds, CPU seconds or None)} from the run's times.tsv
    (`id TAB mix TAB wall [TAB load TAB cpu]`)."""
    times = {}
    path = os.path.join(directory, "times.tsv")
    if os.path.isfile(path):
        for line in open(path):
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 3 and fields[1] == mix:
                times[fields[0]] = (float(fields[2]), float(fields[4]) if len(fields) >= 5 and fields[4] else None)
    return times


def phrase_count(words, phrase):
    n = len(phrase)
    return sum(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def terms_heard(call, transcript, terms):
    """(times a term is said in the turns, times it is also in the transcript): each term counts
    at most as often as the reference says it."""
    ref = normalize(" ".join(t["text"] for t in call["turns"]))
    hyp = normalize(" ".join(s["text"] for ch in transcript["channels"] for s in ch["segments"]))
    said = heard = 0
    for term in terms:
        phrase = normalize(term)
        n = phrase_count(ref, phrase)
        said, heard = said + n, heard + min(n, phrase_count(hyp, phrase))
    return said, heard


def numbers_heard(call, transcript):
    """(numbers read out in the call, those whose digits the transcript has in a row): cards,
    SSNs, phone, zip and order numbers (the manifest's `spoken_numbers`)."""
    hyp = "".join(w for w in normalize(" ".join(s["text"] for ch in transcript["channels"] for s in ch["segments"]))
                  if w.isdigit())
    numbers = call.get("spoken_numbers", [])
    return len(numbers), sum(n["digits"] in hyp for n in numbers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("runs", nargs="+", help="a folder of transcripts per run")
    parser.add_argument("--mix", choices=("stereo", "mono"), default="stereo")
    parser.add_argument("--per-call", action="store_true", help="also print each call's WER per run")
    parser.add_argument("--terms", default="", help="comma-separated phrases (company names, say): how many of "
                        "their mentions in the turns the transcript has too")
    args = parser.parse_args()
    manifest = json.load(open(args.manifest))
    calls = [c for c in manifest["calls"] if all(transcript_path(d, c, args.mix) for d in args.runs)]
    if not calls:
        sys.exit("no call has a transcript in every run")
    print(f"{len(calls)} calls ({args.mix}): "
          + ", ".join(f"{s} {sum(c['split'] == s for c in calls)}" for s in ("tune", "holdout")))
    print(f"{'run':24s} {'split':8s} {'WER %':>7s} {'errors':>7s} {'ref words':>9s} {'in ev.':>6s} {'halluc.':>7s} {'audio s/wall s':>14s} {'/CPU s':>6s} {'numbers':>7s} {'terms':>7s}")
    for directory in args.runs:
        times = run_times(directory, args.mix)
        terms = [t.strip() for t in args.terms.split(",") if t.strip()]
        for split in ("tune", "holdout", "all"):
            chosen = [c for c in calls if split == "all" or c["split"] == split]
            if not chosen:
                continue
            errors = words = in_events = halluc = said = heard = read = got = 0
            audio = wall = cpu_audio = cpu = 0.0
            for call in chosen:
                transcript = json.load(open(transcript_path(directory, call, args.mix)))
                e, n, w, h = call_errors(call, transcript, args.mix)
                errors, words, in_events, halluc = errors + e, words + n, in_events + w, halluc + h
                read_here, got_here = numbers_heard(call, transcript)
                read, got = read + read_here, got + got_here
                said_here, heard_here = terms_heard(call, transcript, terms)
                said, heard = said + said_here, heard + heard_here
                if call["id"] in times:
                    wall_s, cpu_s = times[call["id"]]
                    audio, wall = audio + call["duration"], wall + wall_s
                    if cpu_s:
                        cpu_audio, cpu = cpu_audio + call["duration"], cpu + cpu_s
                if args.per_call and split == "all":
                    print(f"  {call['id']} {call['split']:7s} {call['scenario']:30s} WER {100 * e / max(n, 1):6.1f} % ({e}/{n})")
            speed = f"{audio / wall:14.2f}" if wall else f"{'-':>14s}"
            speed += f" {cpu_audio / cpu:6.2f}" if cpu else f" {'-':>6s}"
            speed += f" {got:3d}/{read:<3d}"
            speed += f" {heard:3d}/{said:<3d}" if terms else ""
            print(f"{os.path.basename(os.path.normpath(directory)):24s} {split:8s} {100 * errors / words:7.1f} "
                  f"{errors:7d} {words:9d} {in_events:6d} {halluc:7d} {speed}")


if __name__ == "__main__":
    main()
