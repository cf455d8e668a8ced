-- 0011_campaign_data_retention: a campaign delivery's own template data (deliveries.data,
-- the contact's fields) is personal data like the message content, so it goes when the
-- retention purges the campaign's message (worker housekeeping, POSTHORN_RETENTION). This
-- partial index holds only deliveries that still carry data, so the purge finds them
-- without rescanning the ones it already cleared.
CREATE INDEX deliveries_data_held ON deliveries (account_id, message_id) WHERE data IS NOT NULL;
