-- The zipcode risk table and its version counter.
-- One row a zipcode (ranges are expanded at load time), so a lookup is a primary-key probe
-- and a listing by factor is an index-only range scan.
CREATE TABLE zipcodes (
    zipcode     integer PRIMARY KEY CHECK (zipcode BETWEEN 1000 AND 9999),
    risk_factor char(1) NOT NULL CHECK (risk_factor IN ('A', 'B', 'C'))
);

CREATE INDEX zipcodes_risk_factor_idx ON zipcodes (risk_factor, zipcode);

-- Bumped in the same transaction as every reload: cached answers are keyed by it.
CREATE TABLE risk_table_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL DEFAULT 0,
    loaded_at timestamptz,
    rows      integer NOT NULL DEFAULT 0
);

INSERT INTO risk_table_meta (singleton) VALUES (true);
