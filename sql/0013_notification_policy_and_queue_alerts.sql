-- When a channel's messages go out (quiet hours, a rate limit with a digest), queue health
-- alerts, the workers' own heartbeats, and a wake-up for the delivery lane.

-- Quiet hours are local to the organization's time zone. Flags at or above
-- quiet_bypass_severity still go out at once (NULL: nothing does); the rest wait for the end of
-- quiet hours and go as one digest. Past rate_limit messages per rate_window the channel gets
-- one digest of what was held instead of a message each.
ALTER TABLE core.notification_channels
  ADD COLUMN quiet_start time,
  ADD COLUMN quiet_end time,
  ADD COLUMN quiet_bypass_severity core.flag_severity DEFAULT 'critical',
  ADD COLUMN rate_limit integer CHECK (rate_limit > 0),
  ADD COLUMN rate_window interval NOT NULL DEFAULT '1 hour' CHECK (rate_window > interval '0'),
  ADD CONSTRAINT notification_channels_quiet_hours_whole
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL)),
  ADD CONSTRAINT notification_channels_quiet_hours_not_empty CHECK (quiet_start <> quiet_end);

-- A held message is pending with next_attempt_at at the end of its hold and the reason kept; a
-- message folded into a digest is 'digested' and names the digest row that carried it.
ALTER TYPE core.notification_state ADD VALUE 'digested';
ALTER TABLE core.notifications
  ADD COLUMN held_reason text CHECK (held_reason IN ('quiet_hours', 'rate_limit')),
  ADD COLUMN digest_id uuid REFERENCES core.notifications ON DELETE SET NULL;
-- The rate limit counts a channel's recent deliveries.
CREATE INDEX idx_notifications_delivered ON core.notifications (org_id, channel, delivered_at)
  WHERE delivered_at IS NOT NULL;

-- A new outbox row wakes idle delivery lanes (LISTEN callscript_queue, payload
-- 'notifications'), so an alert leaves within milliseconds of its cause's commit.
CREATE FUNCTION core.notify_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('callscript_queue', 'notifications');
  RETURN NULL;
END
$$;
CREATE TRIGGER notify_outbox_insert AFTER INSERT ON core.notifications
  FOR EACH STATEMENT EXECUTE FUNCTION core.notify_outbox();

-- Queue health thresholds per organization (defaults when it has no row).
CREATE TABLE core.queue_alert_settings (
  org_id                      uuid PRIMARY KEY REFERENCES core.organizations ON DELETE CASCADE,
  enabled                     boolean NOT NULL DEFAULT true,
  -- The oldest call waiting for transcription (ready, due) longer than this.
  backlog_minutes             integer NOT NULL DEFAULT 15 CHECK (backlog_minutes > 0),
  -- More than this share of the calls that ended a lane in the window failed...
  failure_rate_percent        numeric(5, 2) NOT NULL DEFAULT 20
                                CHECK (failure_rate_percent > 0 AND failure_rate_percent <= 100),
  failure_window_minutes      integer NOT NULL DEFAULT 15 CHECK (failure_window_minutes > 0),
  -- ...counting only windows with at least this many calls (one failure of one is no rate).
  failure_min_calls           integer NOT NULL DEFAULT 5 CHECK (failure_min_calls > 0),
  -- Calls wait and no transcription worker reported in for this long.
  worker_silence_minutes      integer NOT NULL DEFAULT 5 CHECK (worker_silence_minutes > 0),
  -- At least this many calls reached the dead letter within the window.
  dead_letter_threshold       integer NOT NULL DEFAULT 10 CHECK (dead_letter_threshold > 0),
  dead_letter_window_minutes  integer NOT NULL DEFAULT 60 CHECK (dead_letter_window_minutes > 0),
  updated_at                  timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('core.queue_alert_settings');

-- One row per episode of a condition: opened when it starts, closed when it ends. At most one
-- open episode per org and condition, so concurrent checkers alert once.
CREATE TABLE core.queue_alerts (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id           uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  condition        text NOT NULL
                     CHECK (condition IN ('backlog', 'failure_rate', 'no_worker', 'dead_letters')),
  started_at       timestamptz NOT NULL DEFAULT now(),
  detail           text NOT NULL,
  resolved_at      timestamptz,
  resolved_detail  text,
  CHECK ((resolved_at IS NULL) = (resolved_detail IS NULL))
);
SELECT core.enable_tenant_isolation('core.queue_alerts');
CREATE UNIQUE INDEX uq_queue_alerts_open ON core.queue_alerts (org_id, condition)
  WHERE resolved_at IS NULL;

-- Long-running lane processes report in here every few seconds, busy or idle, so "calls wait
-- and nobody is working" can be told from "nobody needs to work". A worker of one org has
-- org_id set; NULL serves every org.
CREATE TABLE core.workers (
  worker        text PRIMARY KEY,
  lane          text NOT NULL,
  org_id        uuid REFERENCES core.organizations ON DELETE CASCADE,
  host          text,
  started_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('core.workers');
CREATE INDEX idx_workers_lane_seen ON core.workers (lane, last_seen_at);
