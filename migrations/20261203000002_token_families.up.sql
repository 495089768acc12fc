-- Sessions (token families). A login starts a session; every refresh token it rotates through
-- belongs to it, and every access token names it (the `sid` claim), so ending the session ends
-- all of them at once: logout, a deactivation, or the reuse of an already-used refresh token
-- (OAuth 2.0 Security BCP: a replayed refresh token revokes its whole family).
CREATE TABLE sessions (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    user_id          uuid NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    revoked_reason   text CHECK (revoked_reason IN ('logout', 'reuse', 'deactivated')),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX sessions_user_live_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Each existing refresh token becomes a session of its own; a revoked one (used or logged out:
-- the old schema did not tell them apart) becomes a used token in a session ended by logout.
INSERT INTO sessions (id, organization_id, user_id, created_at, revoked_at, revoked_reason)
SELECT id, organization_id, user_id, created_at, revoked_at,
       CASE WHEN revoked_at IS NOT NULL THEN 'logout' END
FROM refresh_tokens;

ALTER TABLE refresh_tokens
    ADD COLUMN session_id uuid REFERENCES sessions (id),
    ADD COLUMN used_at timestamptz;
UPDATE refresh_tokens SET session_id = id, used_at = revoked_at;
ALTER TABLE refresh_tokens ALTER COLUMN session_id SET NOT NULL;
DROP INDEX refresh_tokens_user_idx;
ALTER TABLE refresh_tokens DROP COLUMN revoked_at;
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
