-- Many instances on one database: the instances alive, and which one owns each running
-- session. An instance renews its heartbeat and its leases every few seconds; one that stops
-- renewing loses both when `expires_at` passes, and a live instance takes its sessions over.
-- A lease's `generation` grows with every change of owner: an owner's writes are fenced by
-- it, so an owner that stalled past its lease (and was replaced) can no longer write.
CREATE TABLE instances (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    address       TEXT,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE session_leases (
    session_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES sessions(id),
    instance_id   TEXT NOT NULL,
    generation    BIGINT NOT NULL,
    acquired_at   BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX session_leases_by_instance ON session_leases (instance_id);
