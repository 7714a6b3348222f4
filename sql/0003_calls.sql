-- The calls table is also the queue. Each lane has a ready state it claims from and a leased
-- state it holds while working (the lease columns are set exactly in the leased states):
--   vault       pending      -> downloading  -> downloaded
--   transcribe  downloaded   -> transcribing -> transcribed
--   judge       transcribed  -> judging      -> judged
-- A retry is the ready state with `run_after` in the future and `last_error` set; past
-- `max_attempts` a call goes to `failed` (dead letter) and remembers in `failed_state` the
-- ready state a re-queue returns it to. `skipped` is for calls with no recording.

CREATE TYPE core.call_state AS ENUM (
  'pending', 'downloading', 'downloaded',
  'transcribing', 'transcribed',
  'judging', 'judged',
  'failed', 'skipped'
);

CREATE TABLE core.calls (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id            uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  campaign_id       uuid REFERENCES core.campaigns ON DELETE SET NULL,
  source            core.call_source NOT NULL,
  external_id       text NOT NULL,

  state             core.call_state NOT NULL DEFAULT 'pending',
  priority          smallint NOT NULL DEFAULT 0,
  attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts      integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
  run_after         timestamptz NOT NULL DEFAULT now(),
  -- When the call entered its current ready state; aging counts from here.
  queued_at         timestamptz NOT NULL DEFAULT now(),
  aged_at           timestamptz,
  lease_owner       text,
  lease_token       uuid,
  heartbeat_at      timestamptz,
  lease_expires_at  timestamptz,
  rescue_count      integer NOT NULL DEFAULT 0,
  failed_state      core.call_state,
  last_error        text,

  recording_url     text,
  object_key        text,
  sha256            text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  content_type      text,
  size_bytes        bigint CHECK (size_bytes >= 0),
  duration_ms       integer CHECK (duration_ms >= 0),
  channels          smallint CHECK (channels > 0),
  sample_rate       integer CHECK (sample_rate > 0),
  caller_number     text,
  callee_number     text,
  call_started_at   timestamptz NOT NULL,
  flagged           boolean,
  metadata          jsonb NOT NULL DEFAULT '{}',

  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),

  UNIQUE (org_id, source, external_id),
  CONSTRAINT calls_lease_only_while_leased CHECK (
    (state IN ('downloading', 'transcribing', 'judging'))
      = (lease_token IS NOT NULL AND lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)
  ),
  CONSTRAINT calls_failed_state_only_when_failed CHECK (
    (state = 'failed') = (failed_state IS NOT NULL)
  )
);
SELECT core.enable_tenant_isolation('core.calls');

-- One partial index per ready state serves the claim: per org (fairness), priority first,
-- newest call first (LIFO).
CREATE INDEX idx_calls_queue_pending ON core.calls (org_id, priority DESC, call_started_at DESC)
  WHERE state = 'pending';
CREATE INDEX idx_calls_queue_downloaded ON core.calls (org_id, priority DESC, call_started_at DESC)
  WHERE state = 'downloaded';
CREATE INDEX idx_calls_queue_transcribed ON core.calls (org_id, priority DESC, call_started_at DESC)
  WHERE state = 'transcribed';
-- The rescuer's scan.
CREATE INDEX idx_calls_leases ON core.calls (lease_expires_at) WHERE lease_token IS NOT NULL;
-- Aging's scan.
CREATE INDEX idx_calls_waiting ON core.calls (queued_at)
  WHERE state IN ('pending', 'downloaded', 'transcribed');
CREATE INDEX idx_calls_org_state ON core.calls (org_id, state);
CREATE INDEX idx_calls_org_started ON core.calls (org_id, call_started_at DESC);

-- LISTEN callscript_queue wakes idle lanes; the payload is the ready state that got work.
-- Postgres folds identical notifications of one transaction, so a bulk insert sends one.
CREATE FUNCTION core.notify_queue() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('callscript_queue', NEW.state::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER notify_queue_insert AFTER INSERT ON core.calls
  FOR EACH ROW WHEN (NEW.state IN ('pending', 'downloaded', 'transcribed'))
  EXECUTE FUNCTION core.notify_queue();
CREATE TRIGGER notify_queue_update AFTER UPDATE OF state ON core.calls
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                     AND NEW.state IN ('pending', 'downloaded', 'transcribed'))
  EXECUTE FUNCTION core.notify_queue();
