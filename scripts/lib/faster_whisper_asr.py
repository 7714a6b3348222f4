#!/usr/bin/env python3
"""faster-whisper on the same files and settings as callscript, for `scripts/bench --compare`.

The benchmark's speed and accuracy figures only mean something next to the engine callscript
replaces, measured on the same machine, files, model folder, compute type, beam and thread
count. This prints faster-whisper's transcripts and per-file wall times as one JSON object on
stdout; the caller scores both engines with the same WER code, so nothing is scored here.

Run it with the Python of the virtual environment `scripts/whisper-references` creates
(.local/fw-venv, faster-whisper==1.2.1):

  .local/fw-venv/bin/python scripts/lib/faster_whisper_asr.py \\
      --model models/whisper-tiny.en --compute-type int8 --beam-size 1 --threads 2 \\
      --language en --files a.wav b.flac
  ... --tsv /work/shared/eval/asr.tsv       (first column, relative to the TSV's folder)

Output:

  {"engine": "faster-whisper 1.2.1 / ctranslate2 4.8.5", "compute_type": "int8",
   "beam_size": 1, "threads": 2, "language": "en",
   "files": [{"file": ..., "text": ..., "seconds": wall, "audio_seconds": duration}]}

The model is loaded, then the first file is transcribed once untimed (allocations, caches and
CTranslate2's lazy initialization land there, not on the first timed file). Each timed run
covers decoding the audio file, features, the encoder and decoding every segment (the segments
are a lazy generator, so it is consumed inside the timer), as faster-whisper's own
`transcribe(path)` does it; no VAD, timestamps on, condition_on_previous_text at its default.

Errors go to stderr with exit status 1 (usage errors: 2, as argparse does).
"""

import argparse
import csv
import json
import os
import sys
import time


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Transcribe files with faster-whisper and print texts and timings as JSON."
    )
    parser.add_argument("--model", required=True, help="CTranslate2 Whisper model folder")
    parser.add_argument("--compute-type", required=True, choices=["float32", "int8"])
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--threads", type=int, required=True, help="CTranslate2 CPU threads")
    parser.add_argument("--language", default="en")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--files", nargs="+", metavar="FILE", help="audio files")
    inputs.add_argument(
        "--tsv",
        metavar="TSV",
        help="file list: first column, paths relative to the TSV's folder; "
        "a first row whose first column is 'file' is a header",
    )
    args = parser.parse_args(argv)
    if args.beam_size < 1:
        parser.error("--beam-size must be at least 1")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def files_from_tsv(path):
    base = os.path.dirname(os.path.abspath(path))
    files = []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
            if not row or not row[0].strip():
                continue
            if number == 0 and row[0].strip() == "file":
                continue
            files.append(os.path.join(base, row[0].strip()))
    if not files:
        raise ValueError(f"{path}: no files listed")
    return files


def transcribe(model, path, args):
    segments, info = model.transcribe(
        path,
        language=args.language,
        beam_size=args.beam_size,
        vad_filter=False,
        without_timestamps=False,
    )
    text = "".join(segment.text for segment in segments).strip()
    return text, info


def run(args):
    try:
        import ctranslate2
        import faster_whisper
    except ImportError as e:
        raise RuntimeError(
            f"{e}: run this with the Python of .local/fw-venv"
            " (scripts/whisper-references creates it)"
        ) from e

    files = files_from_tsv(args.tsv) if args.tsv else list(args.files)
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError("no such file: " + ", ".join(missing))
    if not os.path.isfile(os.path.join(args.model, "model.bin")):
        raise FileNotFoundError(f"{args.model}: no model.bin (not a CTranslate2 model folder)")

    model = faster_whisper.WhisperModel(
        args.model,
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        local_files_only=True,
    )

    transcribe(model, files[0], args)  # warm-up, untimed

    results = []
    for path in files:
        started = time.perf_counter()
        text, info = transcribe(model, path, args)
        seconds = time.perf_counter() - started
        results.append(
            {
                "file": path,
                "text": text,
                "seconds": seconds,
                "audio_seconds": info.duration,
            }
        )

    engine = f"faster-whisper {faster_whisper.__version__} / ctranslate2 {ctranslate2.__version__}"
    return {
        "engine": engine,
        "compute_type": args.compute_type,
        "beam_size": args.beam_size,
        "threads": args.threads,
        "language": args.language,
        "files": results,
    }


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args)
    except Exception as e:  # noqa: BLE001 - every failure is one line on stderr
        print(f"faster_whisper_asr: error: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
