-- What the worker lane writes, in the same transaction as the call's move to `transcribed`.

CREATE TYPE core.speaker_role AS ENUM ('agent', 'customer', 'unknown');

CREATE TABLE core.transcripts (
  call_id      uuid PRIMARY KEY REFERENCES core.calls ON DELETE CASCADE,
  org_id       uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  model        text NOT NULL,
  language     text,
  text         text NOT NULL,
  word_count   integer NOT NULL DEFAULT 0 CHECK (word_count >= 0),
  avg_logprob  real,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('core.transcripts');

CREATE TABLE core.transcript_segments (
  call_id         uuid NOT NULL REFERENCES core.transcripts ON DELETE CASCADE,
  segment_index   integer NOT NULL CHECK (segment_index >= 0),
  org_id          uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  start_ms        integer NOT NULL CHECK (start_ms >= 0),
  end_ms          integer NOT NULL,
  speaker         text,
  channel         smallint CHECK (channel >= 0),
  role            core.speaker_role,
  text            text NOT NULL,
  avg_logprob     real,
  no_speech_prob  real,
  -- [{"word": "...", "start_ms": 0, "end_ms": 0, "probability": 0.9}] where word times exist.
  words           jsonb,
  PRIMARY KEY (call_id, segment_index),
  CHECK (end_ms >= start_ms)
);
SELECT core.enable_tenant_isolation('core.transcript_segments');
