-- Every committed batch of events wakes the event stream on every origin replica (LISTEN hhs_events), so the
-- dashboards of all replicas see every change. The payload is empty: listeners read the events themselves.
CREATE FUNCTION hhs_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hhs_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION hhs_events_notify();
