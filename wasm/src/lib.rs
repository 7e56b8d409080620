//! lvbak-wasm: the browser's handle on lvbak-core (grows into the Web Worker processor).

use wasm_bindgen::prelude::*;

/// The version of the format core compiled into this module.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
