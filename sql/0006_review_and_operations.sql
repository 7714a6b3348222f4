-- Judge output for reviewers, cost accounting, ingest watermarks and the notification outbox.

CREATE TYPE core.flag_category AS ENUM ('compliance', 'quality', 'fraud');
CREATE TYPE core.flag_severity AS ENUM ('info', 'low', 'medium', 'high', 'critical');
CREATE TYPE core.review_status AS ENUM ('open', 'confirmed', 'dismissed');

CREATE TABLE core.qa_flags (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  call_id           uuid NOT NULL REFERENCES core.calls ON DELETE CASCADE,
  org_id            uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  rule_id           text NOT NULL,
  rulebook_version  text NOT NULL,
  category          core.flag_category NOT NULL,
  severity          core.flag_severity NOT NULL,
  evidence_text     text NOT NULL,
  start_ms          integer CHECK (start_ms >= 0),
  end_ms            integer,
  speaker           text,
  role              core.speaker_role,
  review_status     core.review_status NOT NULL DEFAULT 'open',
  reviewer_id       uuid REFERENCES core.organization_members ON DELETE SET NULL,
  reviewed_at       timestamptz,
  note              text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (end_ms IS NULL OR start_ms IS NULL OR end_ms >= start_ms)
);
SELECT core.enable_tenant_isolation('core.qa_flags');
CREATE INDEX idx_qa_flags_review ON core.qa_flags (org_id, review_status, created_at DESC);
CREATE INDEX idx_qa_flags_call ON core.qa_flags (call_id);
CREATE INDEX idx_qa_flags_rule ON core.qa_flags (org_id, rule_id, created_at DESC);

-- One row per unit of paid work, for cost per hour and per org.
CREATE TABLE core.usage (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id             uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  call_id            uuid REFERENCES core.calls ON DELETE SET NULL,
  lane               text NOT NULL,
  model              text,
  audio_seconds      double precision NOT NULL DEFAULT 0 CHECK (audio_seconds >= 0),
  gpu_seconds        double precision NOT NULL DEFAULT 0 CHECK (gpu_seconds >= 0),
  cpu_seconds        double precision NOT NULL DEFAULT 0 CHECK (cpu_seconds >= 0),
  prompt_tokens      bigint NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
  completion_tokens  bigint NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
  cost_usd           numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
  recorded_at        timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('core.usage');
CREATE INDEX idx_usage_org_time ON core.usage (org_id, recorded_at);

-- Where polling and backfills resume, per org, source and cursor (e.g. a Ringba account).
CREATE TABLE core.ingest_cursors (
  org_id      uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  source      core.call_source NOT NULL,
  cursor_key  text NOT NULL DEFAULT 'default',
  watermark   timestamptz NOT NULL,
  state       jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, source, cursor_key)
);
SELECT core.enable_tenant_isolation('core.ingest_cursors');

CREATE TYPE core.notification_state AS ENUM ('pending', 'sending', 'delivered', 'failed');

-- The outbox: written in the transaction of the fact that causes it, delivered by a lane.
CREATE TABLE core.notifications (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id           uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  event_kind       text NOT NULL,
  dedup_key        text NOT NULL,
  channel          text NOT NULL,
  payload          jsonb NOT NULL,
  state            core.notification_state NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts     integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  delivered_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, channel, dedup_key)
);
SELECT core.enable_tenant_isolation('core.notifications');
CREATE INDEX idx_notifications_due ON core.notifications (next_attempt_at) WHERE state = 'pending';
