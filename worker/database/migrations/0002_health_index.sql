-- The Belgian health index: every month seen, per base year, with its history.
-- One row a (base year, month); a refresh upserts and rewrites a row only when its value
-- changed, so refreshing the same document twice leaves every row untouched.
CREATE TABLE health_index (
    base_year  integer NOT NULL CHECK (base_year BETWEEN 1900 AND 2200),
    period     date NOT NULL CHECK (extract(day FROM period) = 1),
    value      numeric NOT NULL CHECK (value > 0 AND value <= 10000),
    fetched_at timestamptz NOT NULL,
    PRIMARY KEY (base_year, period)
);

-- One row a successful refresh: when, what it saw, what it changed. The latest refresh
-- that carried a base year tells whether that base year's answer is stale.
CREATE TABLE index_refreshes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    refreshed_at   timestamptz NOT NULL DEFAULT now(),
    base_years     integer[] NOT NULL,
    months_stored  integer NOT NULL CHECK (months_stored >= 0),
    months_new     integer NOT NULL CHECK (months_new >= 0),
    months_changed integer NOT NULL CHECK (months_changed >= 0)
);

CREATE INDEX index_refreshes_refreshed_at_idx ON index_refreshes (refreshed_at);
