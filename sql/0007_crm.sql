-- Sales tables the judge lane fills: leads and their scores, one communication per call,
-- agent scripts, follow-ups, conversions.

CREATE TYPE crm.lead_temperature AS ENUM ('hot', 'warm', 'cold');
CREATE TYPE crm.lead_status AS ENUM ('new', 'contacted', 'qualified', 'converted', 'lost', 'do_not_call');

CREATE TABLE crm.leads (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id           uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  campaign_id      uuid REFERENCES core.campaigns ON DELETE SET NULL,
  lead_source      core.call_source NOT NULL,
  phone_number     text,
  first_name       text,
  last_name        text,
  email            text,
  interest_level   text,
  interest_score   smallint CHECK (interest_score BETWEEN 0 AND 100),
  temperature      crm.lead_temperature,
  status           crm.lead_status NOT NULL DEFAULT 'new',
  do_not_call      boolean NOT NULL DEFAULT false,
  -- The signals that made the score, so it can be explained: [{"signal", "weight", "evidence"}].
  score_signals    jsonb NOT NULL DEFAULT '[]',
  last_contact_at  timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, phone_number)
);
SELECT core.enable_tenant_isolation('crm.leads');
CREATE INDEX idx_leads_temperature ON crm.leads (org_id, temperature, interest_score DESC);

CREATE TYPE crm.direction AS ENUM ('inbound', 'outbound');

CREATE TABLE crm.lead_communications (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id              uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  lead_id             uuid NOT NULL REFERENCES crm.leads ON DELETE CASCADE,
  call_id             uuid UNIQUE REFERENCES core.calls ON DELETE SET NULL,
  channel             text NOT NULL DEFAULT 'call',
  direction           crm.direction NOT NULL DEFAULT 'inbound',
  duration_seconds    integer CHECK (duration_seconds >= 0),
  recording_key       text,
  transcript          text,
  summary             text,
  disposition         text,
  sentiment           text,
  outcome             text,
  livekit_room_name   text,
  livekit_room_id     text,
  livekit_egress_id   text,
  occurred_at         timestamptz NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('crm.lead_communications');
CREATE INDEX idx_lead_communications_lead ON crm.lead_communications (lead_id, occurred_at DESC);

CREATE TABLE crm.agent_scripts (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id       uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  campaign_id  uuid REFERENCES core.campaigns ON DELETE CASCADE,
  name         text NOT NULL,
  version      integer NOT NULL DEFAULT 1 CHECK (version > 0),
  body         text NOT NULL,
  -- Targeting: which sources, temperatures or tags this script is for.
  targeting    jsonb NOT NULL DEFAULT '{}',
  active       boolean NOT NULL DEFAULT true,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name, version)
);
SELECT core.enable_tenant_isolation('crm.agent_scripts');

CREATE TYPE crm.action_status AS ENUM ('pending', 'done', 'cancelled');

CREATE TABLE crm.scheduled_actions (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id        uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  lead_id       uuid NOT NULL REFERENCES crm.leads ON DELETE CASCADE,
  call_id       uuid REFERENCES core.calls ON DELETE SET NULL,
  action_type   text NOT NULL,
  due_at        timestamptz NOT NULL,
  status        crm.action_status NOT NULL DEFAULT 'pending',
  attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts  integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
  priority      smallint NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
  urgency       text,
  note          text,
  -- The words that asked for it ("call me back tomorrow at ten").
  source_text   text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('crm.scheduled_actions');
CREATE INDEX idx_scheduled_actions_due ON crm.scheduled_actions (org_id, status, due_at);

CREATE TABLE crm.conversion_events (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id       uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  lead_id      uuid NOT NULL REFERENCES crm.leads ON DELETE CASCADE,
  call_id      uuid REFERENCES core.calls ON DELETE SET NULL,
  event_type   text NOT NULL,
  value        numeric(12, 2),
  currency     char(3) NOT NULL DEFAULT 'USD',
  occurred_at  timestamptz NOT NULL,
  metadata     jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('crm.conversion_events');
CREATE INDEX idx_conversion_events_lead ON crm.conversion_events (lead_id, occurred_at DESC);
