//! fleet_api
