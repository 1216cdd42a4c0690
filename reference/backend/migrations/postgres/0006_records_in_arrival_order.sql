-- SQLite's records becomes a rowid table in arrival order with a unique
-- (device_id, atc) index (see its 0006). PostgreSQL keeps the rows of a
-- table in a heap in arrival order and its primary key in an index of its
-- own already: nothing changes.
SELECT 1;
