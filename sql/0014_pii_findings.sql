-- Card and social security numbers found in a call's transcript, kept apart from its text.
--
-- The stored transcript holds each number only as its label ("[card ending 1111]", "[ssn
-- ending 6789]"); these rows say where each label stands and what it was, so judging the call
-- again flags the same numbers without the clear digits. A row points into the stored
-- (redacted) text: from word `first_word` of segment `first_segment` up to, not including, word
-- `end_word` of segment `last_segment`, counting the segment's normalized words. Replacing the
-- segments (a call transcribed again) deletes the rows that pointed into them. No row holds
-- more than the last four digits.

CREATE TYPE core.pii_kind AS ENUM ('card', 'ssn');

CREATE TABLE core.pii_findings (
  call_id        uuid NOT NULL,
  org_id         uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  kind           core.pii_kind NOT NULL,
  first_segment  integer NOT NULL,
  first_word     integer NOT NULL CHECK (first_word >= 0),
  last_segment   integer NOT NULL CHECK (last_segment >= first_segment),
  end_word       integer NOT NULL CHECK (end_word >= 0),
  start_ms       integer NOT NULL CHECK (start_ms >= 0),
  end_ms         integer NOT NULL,
  speaker        text,
  role           core.speaker_role,
  last_four      text NOT NULL CHECK (last_four ~ '^[0-9]{4}$'),
  -- Which lane found it ('judge'; the worker once it redacts before storing).
  detected_by    text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (call_id, first_segment, first_word),
  FOREIGN KEY (call_id, first_segment)
    REFERENCES core.transcript_segments (call_id, segment_index) ON DELETE CASCADE,
  FOREIGN KEY (call_id, last_segment)
    REFERENCES core.transcript_segments (call_id, segment_index) ON DELETE CASCADE,
  CHECK (end_ms >= start_ms)
);
SELECT core.enable_tenant_isolation('core.pii_findings');
