-- Schemas, database roles and the helpers every later migration uses.
--
-- Two roles (both NOLOGIN; deployments grant them to their login roles):
--   callscript_pipeline  the lanes (ingest, vault, worker, judge): crosses orgs by design.
--   callscript_api       the review API: sees exactly one org, chosen per transaction with
--                        set_config('app.org_id', ...); Postgres row-level security is the guard.
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS crm;

-- Roles are cluster-wide: several databases (parallel test databases, say) may create them
-- at the same moment, so losing that race is not an error.
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['callscript_pipeline', 'callscript_api'] LOOP
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOBYPASSRLS', role_name);
      END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    -- The migrating role runs the lanes and may act as the API role (SET ROLE).
    BEGIN
      EXECUTE format('GRANT %I TO %I', role_name, current_user);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END LOOP;
END
$$;

GRANT USAGE ON SCHEMA core, crm TO callscript_pipeline, callscript_api;

-- The org of the current transaction, or NULL when none is set (then RLS shows nothing).
CREATE FUNCTION core.current_org_id() RETURNS uuid
LANGUAGE sql STABLE
AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

CREATE FUNCTION core.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- Every tenant table goes through this: RLS forced (the owner too), one policy that confines
-- the API role to its org, one that lets the pipeline role through, privileges for both, and
-- the updated_at trigger when the table has that column.
CREATE FUNCTION core.enable_tenant_isolation(tbl regclass, org_column name DEFAULT 'org_id')
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format(
    'CREATE POLICY tenant_isolation ON %s TO callscript_api '
    'USING (%2$I = (SELECT core.current_org_id())) '
    'WITH CHECK (%2$I = (SELECT core.current_org_id()))',
    tbl, org_column);
  EXECUTE format('CREATE POLICY pipeline_lanes ON %s TO callscript_pipeline USING (true) WITH CHECK (true)', tbl);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO callscript_pipeline, callscript_api', tbl);
  IF EXISTS (SELECT 1 FROM pg_attribute
             WHERE attrelid = tbl AND attname = 'updated_at' AND NOT attisdropped) THEN
    EXECUTE format(
      'CREATE TRIGGER touch_updated_at BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION core.touch_updated_at()',
      tbl);
  END IF;
END
$$;
