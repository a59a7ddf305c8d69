//! ic_sim
