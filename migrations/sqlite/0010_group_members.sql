-- See migrations/postgres/0011_group_members.sql.
CREATE TABLE group_members (
    group_id     BLOB NOT NULL,
    resource_id  BLOB NOT NULL,
    PRIMARY KEY (group_id, resource_id)
);
INSERT INTO group_members (group_id, resource_id) SELECT group_id, resource_id FROM leases WHERE group_id IS NOT NULL;
