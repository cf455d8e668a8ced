-- 0012_stats_trim: the hourly counters behind GET /v1/stats are kept for
-- POSTHORN_STATS_RETENTION (default two years) and then deleted by worker housekeeping in
-- bounded batches; this index makes finding the old rows a range scan.
CREATE INDEX stats_hourly_hour ON stats_hourly (hour);
