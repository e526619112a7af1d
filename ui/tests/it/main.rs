//! The dashboard's pure parts (reducer, helpers), natively; one binary, a module per area.
mod board_state;
mod helpers;
