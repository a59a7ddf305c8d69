//! fleet_manager
