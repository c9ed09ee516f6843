-- Budget reservations held in the database (decision 49). PostgreSQL keeps here what calls
-- in flight have reserved, so that every worker process sees every other's; the single
-- DuckDB process keeps its counters in memory and leaves this table empty. It exists in
-- both so that both schemas stay alike (copy_database, parity tests).
CREATE TABLE budget_reservations (
    id UUID PRIMARY KEY,                    -- the call's id (its history row, once written)
    user_id UUID NOT NULL,
    amount DOUBLE NOT NULL,                 -- USD held: the call's upper bound
    expires_at TIMESTAMP NOT NULL           -- a crashed worker's hold ends here
);
