//! user_canister
