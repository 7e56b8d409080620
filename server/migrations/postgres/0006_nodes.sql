-- PostgreSQL: the nodes of the instance and when each last said it was there (issue 22).
-- A node beats every few seconds on its lock holder's connection (the database's clock,
-- never a node's). A node silent for longer than the `node_silent` setting — a hung
-- process, whose connections stay open and whose locks stay held — is fenced by another:
-- every connection it opened (named after it, `application_name`) is ended, so its locks
-- are freed and its unfinished transactions rolled back, and its work goes on elsewhere.
CREATE TABLE lvbak_nodes (
    node_id TEXT COLLATE "C" PRIMARY KEY,
    node_url TEXT,
    beat_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX lvbak_nodes_url ON lvbak_nodes (node_url);
