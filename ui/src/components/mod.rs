//! The views. Each file holds one component, named after what it shows.

pub mod acquire_form;
pub mod analytics_view;
pub mod anomaly_table;
pub mod app;
pub mod bar_chart;
pub mod board_view;
pub mod context;
pub mod create_resource_form;
pub mod dashboard;
pub mod detail_panel;
pub mod filters_bar;
pub mod force_release_form;
pub mod group_holds;
pub mod notice_banner;
pub mod resource_row;
pub mod sessions_view;
pub mod sign_in;
pub mod status_bar;
pub mod type_group;
pub mod types_view;
