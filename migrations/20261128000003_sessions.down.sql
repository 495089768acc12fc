-- Undoes 20261128000003: every session goes. Users sign in again once the migration is back;
-- until then an image that needs refresh tokens cannot log anyone in.

DROP TABLE refresh_tokens;
