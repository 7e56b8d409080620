// The Web Worker: loads lvbak-wasm and answers the page's messages.
importScripts("./lvbak-wasm.js");
const ready = wasm_bindgen("./lvbak-wasm_bg.wasm");
self.onmessage = async (event) => {
  await ready;
  if (event.data.kind === "version") {
    self.postMessage({ kind: "version", version: wasm_bindgen.coreVersion() });
  }
};
