-- How sure the worker is of a call's speaker roles (worker/src/roles.rs): 1 from a stereo
-- channel map, 0.5 for a guess (no phrase told the parties apart), 0.3 for one voice saying both
-- parties' lines; NULL when no roles were assigned. The judge reads the roles of a call under its
-- threshold as unknown (a rule about the customer, such as a do-not-call request, reads every
-- party) and flags the call for review (`speaker-roles-uncertain`).
ALTER TABLE core.transcripts
  ADD COLUMN role_confidence real CHECK (role_confidence BETWEEN 0 AND 1);
