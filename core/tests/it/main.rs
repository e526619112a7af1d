//! hhs-core's integration tests, one binary, a module per area.
mod admission_props;
mod bed_status;
mod clinical_props;
mod lease_props;
mod lease_rules;
mod lock_view;
mod mllp;
mod person_ttl_props;
mod queue_props;
mod rate_buckets;
mod reference;
mod ttl_model;
mod type_policy;
mod validation;
