-- Back to one revocable row per refresh token: a token is revoked when it was used or its
-- session has ended. Access tokens issued since carry a `sid` the old code ignores.
ALTER TABLE refresh_tokens ADD COLUMN revoked_at timestamptz;
UPDATE refresh_tokens t
SET revoked_at = coalesce(t.used_at, s.revoked_at)
FROM sessions s
WHERE s.id = t.session_id;
DROP INDEX refresh_tokens_session_idx;
ALTER TABLE refresh_tokens DROP COLUMN session_id, DROP COLUMN used_at;
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
DROP TABLE sessions;
