-- PostgreSQL: the import jobs open on some node of the instance (issue 22). Each row says
-- which node runs the job (the address other nodes forward the job's requests to), what
-- opened it (a batch job's open request, so another node can take it over when that node
-- is gone), and there is one per account across every node. The node running a job holds
-- the session advisory lock `lock_key` on a connection of its own while the job is open:
-- a lock nobody holds means that node is gone (PostgreSQL frees a dead connection's locks).
CREATE TABLE lvbak_open_jobs (
    job_id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL UNIQUE,
    lock_key BIGINT NOT NULL,
    node_url TEXT,
    kind TEXT NOT NULL,
    opened TEXT,
    opened_at BIGINT NOT NULL,
    -- When a node first found the job's node gone (an abandoned batch job is failed once it
    -- stays so for the batch idle timeout).
    orphaned_at BIGINT
);

-- An open import whose node is gone and whose job another node took over: the next import
-- of the account (the job opened again) takes its rows and vectors as its own, so its end
-- settles and marks them as one import's.
ALTER TABLE lvbak_imports ADD COLUMN handed_on BOOLEAN NOT NULL DEFAULT FALSE;
