-- 0010_contact_status: a hard bounce or a complaint marks the address in the account's lists.
--
-- The suppression that a hard bounce (or, from a feedback source, a complaint) adds is the
-- one place the address is known to be dead or unwilling, so a statement-level trigger on
-- suppressions turns each new such entry into contact status: every list of that account
-- holding the address (compared case-insensitively, as suppressions are) has its
-- 'subscribed' contact set to 'bounced' or 'complained'. Contacts already unsubscribed,
-- bounced or complained keep their status; manual and unsubscribe entries change nothing
-- here (a one-click unsubscribe sets the campaign list's contact itself). Expansion skips
-- suppressed addresses either way; the status is what the lists show and export.
CREATE INDEX contacts_email_ci ON contacts (account_id, lower(email));

CREATE FUNCTION contacts_status_from_suppressions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Rows are locked in primary-key order first (as imports upsert them), so this never
  -- deadlocks with a concurrent import into the same lists.
  WITH s AS (SELECT DISTINCT ON (account_id, lower(email)) account_id, lower(email) AS email,
               CASE source WHEN 'bounce' THEN 'bounced' ELSE 'complained' END AS status
             FROM new_rows WHERE source IN ('bounce', 'complaint')
             ORDER BY account_id, lower(email), source = 'complaint' DESC),
       k AS (SELECT c.account_id, c.list_id, c.email, s.status FROM contacts c
             JOIN s ON c.account_id = s.account_id AND lower(c.email) = s.email
             WHERE c.status = 'subscribed'
             ORDER BY c.account_id, c.list_id, c.email FOR UPDATE OF c)
  UPDATE contacts c SET status = k.status, updated_at = now() FROM k
  WHERE c.account_id = k.account_id AND c.list_id = k.list_id AND c.email = k.email
    AND c.status = 'subscribed';
  RETURN NULL;
END $$;

CREATE TRIGGER suppressions_contact_status AFTER INSERT ON suppressions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_status_from_suppressions();
