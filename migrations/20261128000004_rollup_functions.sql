-- Helpers for the rollup upserts the ingest writers run. Rollup deltas are computed in Rust per
-- batch; these functions only merge stored histograms and keep the derived p95 column current
-- in the same statement. No triggers.
--
-- The histogram layout (aim-pipeline, rollup/histogram.rs): 149 buckets; bucket 0 holds
-- durations <= 0.05 ms, bucket k (1..147) holds (0.05 * 1.1^(k-1), 0.05 * 1.1^k] ms, bucket 148
-- everything over 60 s. A bucket stands for 0.05 * 1.1^(k-1) * 2.2 / 2.1 ms (within 5%).

CREATE FUNCTION aim_histogram_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
    FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$;

CREATE FUNCTION aim_histogram_quantile(h bigint[], q double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce((
        SELECT CASE
                   WHEN i = 1 THEN 0.05
                   WHEN i >= 149 THEN 60000.0
                   ELSE 0.05 * power(1.1, i - 2) * 2.2 / 2.1
               END
        FROM (
            SELECT i, sum(c) OVER (ORDER BY i) AS cumulative, sum(c) OVER () AS total
            FROM unnest(h) WITH ORDINALITY AS t(c, i)
        ) s
        WHERE total > 0 AND cumulative >= greatest(ceil(q * total), 1)
        ORDER BY i
        LIMIT 1
    ), 0)
$$;
