-- The judge's optional LLM brain (an OpenAI-compatible endpoint): what it said about a call,
-- {"model", "summary", "objections": [text], "next_best_action": {"action", "detail"}}.
-- NULL when the rule engine alone judged the call (no endpoint configured, or its answer was
-- late, failed, not JSON or outside the schema); the communication's summary is then the rule
-- engine's. Re-judging replaces it.
ALTER TABLE crm.lead_communications
  ADD COLUMN brain jsonb CHECK (brain IS NULL OR jsonb_typeof(brain) = 'object');
