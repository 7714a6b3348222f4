-- Email (SMTP) and SMS (a Twilio-shaped API) notification channels.
--
-- Their secrets are sealed like the other channels' (core.organization_credentials, kind
-- 'notify', label = the channel's name): the SMTP password, when the server wants a login, and
-- the API's auth token. What is not secret is kept here, readable without the key so listing
-- channels never opens a secret: an email channel's SMTP server, TLS mode, login name, extra
-- root CA, sender and recipients; an SMS channel's API base URL, account SID, sender and
-- recipients.

ALTER TYPE core.notification_channel_kind ADD VALUE 'email';
ALTER TYPE core.notification_channel_kind ADD VALUE 'sms';

-- A JSON object per kind (channels.rs reads and writes it); empty for webhook and Slack
-- channels, whose credential holds all they need.
ALTER TABLE core.notification_channels ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'
  CHECK (jsonb_typeof(settings) = 'object');
