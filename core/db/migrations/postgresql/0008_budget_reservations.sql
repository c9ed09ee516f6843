-- PostgreSQL twin of ../0008_budget_reservations.sql: what calls in flight have reserved
-- from their users' budgets, seen by every worker process (decision 49).
CREATE TABLE budget_reservations (
    id UUID PRIMARY KEY,                    -- the call's id (its history row, once written)
    user_id UUID NOT NULL,
    amount DOUBLE PRECISION NOT NULL,       -- USD held: the call's upper bound
    expires_at TIMESTAMP NOT NULL           -- a crashed worker's hold ends here
);

CREATE INDEX budget_reservations_user ON budget_reservations (user_id, expires_at);
