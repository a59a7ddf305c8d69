//! rollout_core
