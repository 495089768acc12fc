-- Says in the schema what the API documents: a client's own `x-request-id` is kept as given (so
-- it matches the client's logs), so `request_id` is not unique; a row's key is `id`.
COMMENT ON COLUMN api_calls.request_id IS
    'x-request-id: the client''s value when it sent a sane one (kept as given, so NOT unique: '
    'clients may reuse or share ids), else one the service generated (UUID v7). The row''s unique key is id.';
