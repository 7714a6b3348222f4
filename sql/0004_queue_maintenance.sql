-- Queue policy shared by every process, and the maintenance the rescuer runs: expired leases
-- back to the queue (or to the dead letter), and aging so LIFO never parks old calls forever.
-- Both run from pg_cron where it is available and from the service otherwise; both are safe
-- to run concurrently (SKIP LOCKED) and repeatedly.

CREATE TABLE core.queue_settings (
  singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- A call waiting in a ready state longer than this gains one priority step (and again
  -- after each further period), so it is served before newer calls of its old priority.
  aging_after        interval NOT NULL DEFAULT '30 minutes' CHECK (aging_after > interval '0'),
  max_aged_priority  smallint NOT NULL DEFAULT 100,
  backoff_base       interval NOT NULL DEFAULT '10 seconds' CHECK (backoff_base > interval '0'),
  backoff_max        interval NOT NULL DEFAULT '1 hour' CHECK (backoff_max >= backoff_base),
  rescue_batch_size  integer NOT NULL DEFAULT 1000 CHECK (rescue_batch_size > 0)
);
INSERT INTO core.queue_settings DEFAULT VALUES;
GRANT SELECT ON core.queue_settings TO callscript_pipeline;

-- Exponential backoff with +-10 % jitter so retried calls do not return in lockstep.
CREATE FUNCTION core.retry_backoff(attempt integer) RETURNS interval
LANGUAGE sql VOLATILE
AS $$
  SELECT least(s.backoff_max, s.backoff_base * power(2, least(greatest(attempt, 1) - 1, 30)))
         * (0.9 + random() * 0.2)
  FROM core.queue_settings s
$$;

-- The ready state a leased (or dead-lettered) call goes back to.
CREATE FUNCTION core.lane_ready_state(leased core.call_state) RETURNS core.call_state
LANGUAGE sql IMMUTABLE STRICT
AS $$
  SELECT CASE leased
    WHEN 'downloading'  THEN 'pending'::core.call_state
    WHEN 'transcribing' THEN 'downloaded'::core.call_state
    WHEN 'judging'      THEN 'transcribed'::core.call_state
  END
$$;

-- The rescuer ("zombie killer"), after river's JobRescuer but with heartbeats: a lease whose
-- holder stopped heartbeating past `lease_expires_at` is taken back. Decision per call: back
-- to its ready state with backoff ('retry'), or to the dead letter when its attempts are spent
-- ('failed'). Clearing `lease_token` is what fences the old holder out: every lane write
-- compares the token it was given.
CREATE FUNCTION core.rescue_expired_leases(batch_size integer DEFAULT NULL)
RETURNS TABLE (call_id uuid, decision text)
LANGUAGE sql VOLATILE
AS $$
  WITH expired AS (
    SELECT c.id
    FROM core.calls c
    WHERE c.lease_token IS NOT NULL AND c.lease_expires_at < now()
    ORDER BY c.lease_expires_at
    LIMIT coalesce(batch_size, (SELECT rescue_batch_size FROM core.queue_settings))
    FOR UPDATE SKIP LOCKED
  )
  UPDATE core.calls c SET
    state = CASE WHEN c.attempts >= c.max_attempts THEN 'failed'::core.call_state
                 ELSE core.lane_ready_state(c.state) END,
    failed_state = CASE WHEN c.attempts >= c.max_attempts THEN core.lane_ready_state(c.state) END,
    run_after = CASE WHEN c.attempts >= c.max_attempts THEN c.run_after
                     ELSE now() + core.retry_backoff(c.attempts) END,
    queued_at = now(),
    aged_at = NULL,
    rescue_count = c.rescue_count + 1,
    last_error = format('lease held by %s expired at %s without a heartbeat; rescued (attempt %s of %s)',
                        c.lease_owner, c.lease_expires_at, c.attempts, c.max_attempts),
    lease_owner = NULL,
    lease_token = NULL,
    heartbeat_at = NULL,
    lease_expires_at = NULL
  FROM expired
  WHERE c.id = expired.id
  RETURNING c.id, CASE WHEN c.state = 'failed' THEN 'failed' ELSE 'retry' END
$$;

-- Aging: one priority step per `aging_after` spent waiting in a ready state.
CREATE FUNCTION core.age_waiting_calls() RETURNS integer
LANGUAGE sql VOLATILE
AS $$
  WITH aged AS (
    UPDATE core.calls c SET
      priority = least(c.priority + 1, s.max_aged_priority),
      aged_at = now()
    FROM core.queue_settings s
    WHERE c.state IN ('pending', 'downloaded', 'transcribed')
      AND coalesce(c.aged_at, c.queued_at) < now() - s.aging_after
      AND c.priority < s.max_aged_priority
    RETURNING 1
  )
  SELECT count(*)::integer FROM aged
$$;

-- One maintenance pass: rescue in batches until none is left, then age. This is what pg_cron
-- and the service's own maintenance loop both run.
CREATE FUNCTION core.run_maintenance(OUT rescued integer, OUT dead_lettered integer, OUT aged integer)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  batch integer := (SELECT rescue_batch_size FROM core.queue_settings);
  retried_now integer;
  failed_now integer;
BEGIN
  rescued := 0;
  dead_lettered := 0;
  LOOP
    SELECT count(*) FILTER (WHERE decision = 'retry'), count(*) FILTER (WHERE decision = 'failed')
      INTO retried_now, failed_now
      FROM core.rescue_expired_leases(batch);
    rescued := rescued + retried_now;
    dead_lettered := dead_lettered + failed_now;
    EXIT WHEN retried_now + failed_now < batch;
  END LOOP;
  aged := core.age_waiting_calls();
END
$$;

-- Schedules core.run_maintenance() every minute with pg_cron when this database can use it,
-- and says why not otherwise (then the service runs the maintenance itself).
CREATE FUNCTION core.schedule_maintenance() RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron') THEN
    RETURN 'pg_cron is not installed on this server';
  END IF;
  IF current_setting('shared_preload_libraries') !~ 'pg_cron' THEN
    RETURN 'pg_cron is installed but not in shared_preload_libraries';
  END IF;
  IF current_setting('cron.database_name', true) IS DISTINCT FROM current_database() THEN
    RETURN format('pg_cron runs in database %L, not in %L',
                  current_setting('cron.database_name', true), current_database());
  END IF;
  CREATE EXTENSION IF NOT EXISTS pg_cron;
  -- Scheduling under an existing name replaces that job, so this is idempotent.
  EXECUTE $cron$SELECT cron.schedule('callscript-maintenance', '* * * * *',
                                     'SELECT core.run_maintenance()')$cron$;
  RETURN 'scheduled';
END
$$;
