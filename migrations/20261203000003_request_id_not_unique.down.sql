COMMENT ON COLUMN api_calls.request_id IS NULL;
