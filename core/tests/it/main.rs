//! hhs-core's integration tests, one binary, a module per area.
mod lease_props;
mod lease_rules;
mod lock_view;
mod ttl_model;
mod type_policy;
mod validation;
