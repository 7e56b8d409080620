// The page's glue: starts the worker and shows what it answers.
const worker = new Worker("/worker.js");
worker.onmessage = (event) => {
  if (event.data.kind === "version") {
    document.getElementById("status").textContent = `Archive processor ready (lvbak-core ${event.data.version}).`;
  }
};
worker.postMessage({ kind: "version" });
