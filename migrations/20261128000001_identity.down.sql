-- Undoes 20261128000001: the whole identity schema, and so every organization, user, agent,
-- key, verification, trust score and audit entry. Only for tearing a database down.

DROP TABLE audit_events;
DROP TABLE trust_score_history;
DROP TABLE verification_events;
DROP TABLE api_keys;
DROP TABLE agents;
DROP TABLE users;
DROP TABLE organizations;
