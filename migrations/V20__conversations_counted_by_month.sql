-- Each new conversation counts its account's conversations this month against the plan (V7's
-- `check_count_limit`; the usage summary counts them too). The only index starting with
-- user_id is ordered by last_message_at, so that count read every conversation the account
-- ever had: 8.8 ms per new conversation for an account with 60,000 older ones (the planner
-- chose a sequential scan), growing with the account's history. With (user_id, created_at)
-- it reads this month's only: 0.28 ms for the same account.
--
-- Built in the migration's transaction (CREATE INDEX CONCURRENTLY cannot run in one): new
-- conversations wait while it builds (24 ms for 62,000 rows on the development machine).
CREATE INDEX conversations_account_created_idx ON public.conversations (user_id, created_at);
