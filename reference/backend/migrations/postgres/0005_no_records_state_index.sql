-- records_state (records by state) served no query: every read of records
-- is by (device_id, atc), the primary key, or reads them all. Each record
-- written also wrote a page of it: in SQLite one more WAL frame in most
-- authorisations' commits.
DROP INDEX IF EXISTS records_state;
