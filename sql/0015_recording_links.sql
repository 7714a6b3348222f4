-- Signed recording links (Ringba's `recordingUrl` with its `k=…`, LiveKit's presigned
-- `location` with `X-Amz-Signature=…`) let whoever holds them fetch the recording. They were
-- kept on the call (`recording_url`, and inside `metadata`), which every member of the org reads
-- through the review API. A link now lives here alone: the pipeline's vault lane reads it, the
-- API role has no grant on the table, and the vault deletes it once it is done with the call.

CREATE TABLE core.call_recording_links (
  call_id     uuid PRIMARY KEY REFERENCES core.calls ON DELETE CASCADE,
  org_id      uuid NOT NULL REFERENCES core.organizations ON DELETE CASCADE,
  url         text NOT NULL CHECK (url <> ''),
  created_at  timestamptz NOT NULL DEFAULT now()
);
SELECT core.enable_tenant_isolation('core.call_recording_links');
REVOKE ALL ON core.call_recording_links FROM callscript_api;

-- The links the vault still needs: calls waiting for it, in it, or dead-lettered in it (a
-- requeue sends them back to `pending`).
INSERT INTO core.call_recording_links (call_id, org_id, url)
SELECT id, org_id, recording_url FROM core.calls
WHERE recording_url <> ''
  AND (state IN ('pending', 'downloading') OR failed_state = 'pending');

ALTER TABLE core.calls DROP COLUMN recording_url;

-- What members keep of a link: where it pointed, its query cut (as the vault's errors show it,
-- and as ingest writes it from now on).
CREATE FUNCTION pg_temp.shown_link(url text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT CASE WHEN strpos(url, '?') > 0 THEN split_part(url, '?', 1) || '?…' ELSE url END $$;

UPDATE core.calls
SET metadata = jsonb_set(metadata, '{ringba,recordingUrl}',
                         to_jsonb(pg_temp.shown_link(metadata #>> '{ringba,recordingUrl}')))
WHERE source = 'ringba' AND metadata #>> '{ringba,recordingUrl}' LIKE '%?%';

UPDATE core.calls
SET metadata = jsonb_set(metadata, '{location}', to_jsonb(pg_temp.shown_link(metadata ->> 'location')))
WHERE source = 'livekit' AND metadata ->> 'location' LIKE '%?%';
