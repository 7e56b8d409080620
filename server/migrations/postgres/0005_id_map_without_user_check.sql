-- The id map without its foreign key to "user": the check ran a trigger per row written,
-- which doubled what a second account's copy of 100,000 rows spent writing the id map
-- (0.77 s against 0.36 s for 100,000 rows in psql). lvbak never deletes an account on
-- PostgreSQL, so the cascade it carried never ran; the map's rows are the importer's own.
ALTER TABLE lvbak_id_map DROP CONSTRAINT IF EXISTS lvbak_id_map_user_id_fkey;
