-- A group's members, written when the group is granted (hhs_core::group::by_id): an operation by the group's id
-- acts on every member or refuses, so the membership cannot be read from the leases, whose group_id goes with the
-- next grant of a member (an admin's force-release, then another clinic's acquire). Written once, never changed.
-- No foreign key: a member's resource may be deleted after its hold ended, and the group still names it.
CREATE TABLE group_members (
    group_id     UUID NOT NULL,
    resource_id  UUID NOT NULL,
    PRIMARY KEY (group_id, resource_id)
);
-- Groups granted before this table: their members as far as the leases still say.
INSERT INTO group_members (group_id, resource_id) SELECT group_id, resource_id FROM leases WHERE group_id IS NOT NULL;
