//! wasm_store
