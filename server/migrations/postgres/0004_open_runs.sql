-- PostgreSQL: the re-vectorization runs going on some node of the instance (issue 22), one
-- per account across every node: which node runs each (the address other nodes forward
-- the run's status, events, start and cancel to). As for open jobs, the node holds the
-- session advisory lock `lock_key` while the run goes; a lock nobody holds means the node
-- is gone, and another node resumes the run from the queue (`lvbak_embedding_queue`).
CREATE TABLE lvbak_open_runs (
    user_id TEXT COLLATE "C" PRIMARY KEY,
    lock_key BIGINT NOT NULL,
    node_url TEXT,
    started_at BIGINT NOT NULL
);

-- How each account's last run ended (its final status, as the status answer gives it), so
-- every node answers the same once it ended wherever it went.
CREATE TABLE lvbak_run_ends (
    user_id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT NOT NULL
);
