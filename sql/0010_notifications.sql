-- Notification channels: where an organization's alerts go, and which alerts go there.
--
-- A channel's secret (a webhook's signing secret, a Slack incoming-webhook URL, which is itself
-- the credential) is sealed in core.organization_credentials under kind 'notify' with the
-- channel's name as label; a webhook's URL is that credential's endpoint. This table holds only
-- the routing, so listing channels never needs the key.

CREATE TYPE core.notification_channel_kind AS ENUM ('webhook', 'slack');

CREATE TABLE core.notification_channels (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id        uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  -- core.notifications.channel names it; also the credential's label.
  name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  kind          core.notification_channel_kind NOT NULL,
  -- The events routed here ('flag', 'hot_lead').
  event_kinds   text[] NOT NULL DEFAULT '{flag,hot_lead}',
  -- Flags below this severity are not routed here (events without a severity always are).
  min_severity  core.flag_severity NOT NULL DEFAULT 'high',
  enabled       boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name)
);
SELECT core.enable_tenant_isolation('core.notification_channels');

-- The delivery lane claims rows that are due: pending ones, and sending ones whose sender's
-- lease ran out (it crashed or hung). 0006's index covered pending rows only.
DROP INDEX core.idx_notifications_due;
CREATE INDEX idx_notifications_due ON core.notifications (next_attempt_at)
  WHERE state IN ('pending', 'sending');
