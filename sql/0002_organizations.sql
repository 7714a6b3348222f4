-- Tenants, their people, their secrets and their campaigns.

CREATE TABLE core.organizations (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name        text NOT NULL,
  timezone    text NOT NULL DEFAULT 'UTC',
  settings    jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('core.organizations', 'id');

CREATE TYPE core.member_role AS ENUM ('admin', 'reviewer', 'viewer');

CREATE TABLE core.organization_members (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id            uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  email             text NOT NULL,
  display_name      text,
  role              core.member_role NOT NULL DEFAULT 'viewer',
  -- API tokens are stored as their SHA-256 only.
  api_token_sha256  bytea UNIQUE,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, email)
);
SELECT core.enable_tenant_isolation('core.organization_members');

-- Third-party secrets (Ringba token, LiveKit key/secret, notification channels), sealed with an
-- AEAD key from the environment. `public_id` holds the non-secret half (Ringba account id,
-- LiveKit API key) so lookups need no decryption.
CREATE TABLE core.organization_credentials (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  kind        text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,31}$'),
  label       text NOT NULL DEFAULT 'default',
  public_id   text,
  key_id      text NOT NULL,
  nonce       bytea NOT NULL,
  ciphertext  bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, kind, label)
);
SELECT core.enable_tenant_isolation('core.organization_credentials');
-- Secrets never reach the review API, not even its own org's.
REVOKE ALL ON core.organization_credentials FROM callscript_api;

CREATE TYPE core.call_source AS ENUM ('ringba', 'livekit', 'upload');

CREATE TABLE core.campaigns (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id       uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  source       core.call_source NOT NULL,
  external_id  text NOT NULL,
  name         text NOT NULL,
  -- "name" or "name@version" of the rulebook the judge applies; NULL means the default one.
  rulebook     text,
  -- Which channel is which party, e.g. {"0": "agent", "1": "customer"}.
  channel_map  jsonb,
  tags         text[] NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, source, external_id)
);
SELECT core.enable_tenant_isolation('core.campaigns');
