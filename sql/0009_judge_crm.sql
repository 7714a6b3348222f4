-- The judge's inputs and outputs beyond flags: stored rulebooks (per org, versioned) and which
-- one an org applies; each call's own lead assessment; keys that make re-judging a call replace
-- its follow-ups and conversions instead of adding to them; the managers' daily reports.

-- A rulebook as uploaded (`callscript rules add`). A version never changes once stored: flags
-- name the version that raised them, so the text behind that name must stay what it was.
CREATE TABLE core.rulebooks (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
  version     text NOT NULL CHECK (version ~ '^[A-Za-z0-9._-]{1,64}$'),
  body        text NOT NULL,
  sha256      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name, version)
);
SELECT core.enable_tenant_isolation('core.rulebooks');
CREATE INDEX idx_rulebooks_latest ON core.rulebooks (org_id, name, created_at DESC);

-- The org's rulebook ("name" = its latest version, or "name@version") where a campaign names
-- none; NULL means the one compiled into the binary.
ALTER TABLE core.organizations ADD COLUMN rulebook text;

-- One call's assessment; the lead's own score is its latest call's.
ALTER TABLE crm.lead_communications
  ADD COLUMN interest_score smallint CHECK (interest_score BETWEEN 0 AND 100),
  ADD COLUMN temperature crm.lead_temperature,
  -- [{"name", "weight", "evidence", "start_ms"}], as in crm.leads.score_signals.
  ADD COLUMN score_signals jsonb NOT NULL DEFAULT '[]',
  -- [{"label", "text", "start_ms", "end_ms"}]: what the customer objected to and asked.
  ADD COLUMN objections jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN questions jsonb NOT NULL DEFAULT '[]';

-- One follow-up of each type and one conversion of each type per call: re-judging updates them.
CREATE UNIQUE INDEX uq_scheduled_actions_call ON crm.scheduled_actions (call_id, action_type)
  WHERE call_id IS NOT NULL;
CREATE UNIQUE INDEX uq_conversion_events_call ON crm.conversion_events (call_id, event_type)
  WHERE call_id IS NOT NULL;

-- `callscript report daily`: one per org and local day, rewritten when run again.
CREATE TABLE crm.daily_reports (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  day         date NOT NULL,
  timezone    text NOT NULL,
  body        jsonb NOT NULL,
  text        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, day)
);
SELECT core.enable_tenant_isolation('crm.daily_reports');
