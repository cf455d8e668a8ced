-- 0009_webhook_log_retention: finished webhook batches and the attempt log are purged by
-- worker housekeeping once older than POSTHORN_EVENT_RETENTION (the events they carried
-- are gone by then too); these indexes keep that purge a range scan.
CREATE INDEX webhook_batches_finished ON webhook_batches (created_at) WHERE state <> 'pending';
CREATE INDEX webhook_attempts_created ON webhook_attempts (created_at);
