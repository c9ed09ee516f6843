-- PostgreSQL twin of ../0008_budget_reservations.sql: what calls in flight have reserved
-- from their users' budgets, seen by every worker process (decision 49).
CREATE TABLE budget_reservations (
    id UUID PRIMARY KEY,                    -- the call's id (its history row, once written)
    user_id UUID NOT NULL,
    amount DOUBLE PRECISION NOT NULL,       -- USD held: the call's upper bound
    expires_at TIMESTAMP NOT NULL           -- a crashed worker's hold ends here
);

CREATE INDEX budget_reservations_user ON budget_reservations (user_id, expires_at);

-- Every reservation sums the user's spend this period: with the cost in the index that sum
-- is an index-only scan (about half the time for a user with 5,000 calls this month).
DROP INDEX usage_records_user_time;
CREATE INDEX usage_records_user_time ON usage_records (user_id, occurred_at) INCLUDE (cost);
