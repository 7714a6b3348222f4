-- Ingest lanes: where a credential's API lives, and finding a credential by its public half.

-- The API base URL of a credential (Ringba: https://api.ringba.com/v2; LiveKit: the project's
-- URL, needed for ListEgress). NULL means the vendor's default.
ALTER TABLE core.organization_credentials ADD COLUMN endpoint text
  CHECK (endpoint IS NULL OR endpoint ~ '^https?://');

-- A LiveKit webhook names its API key (the JWT's `iss`); this finds the org and secret.
CREATE INDEX idx_credentials_public_id ON core.organization_credentials (kind, public_id)
  WHERE public_id IS NOT NULL;
