// The Worker's entry module. wasm-bindgen's output (index.js, built by `cargo xtask`) exports
// `fetch(request, env, ctx)`; the Workers runtime wants a default-exported entrypoint. This is the part of
// worker-build's shim that HHS needs: route fetch into the wasm, and if the wasm instance ever hits a
// critical error (a trap), reset its state before the next request instead of failing every request after.
import { WorkerEntrypoint } from "cloudflare:workers";
import * as wasm from "./index.js";

const initState = wasm.__worker_init_state();

function recoverIfCrashed() {
  if (initState.criticalError) {
    console.log("hhs-edge: reinitialising the wasm instance after a critical error");
    wasm.__wbg_reset_state();
    initState.criticalError = false;
    initState.instanceId++;
  }
}

export default class HhsEdge extends WorkerEntrypoint {
  async fetch(request) {
    recoverIfCrashed();
    try {
      return await wasm.fetch(request, this.env, this.ctx);
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) {
        console.error("hhs-edge: critical error", e);
        initState.criticalError = true;
      }
      throw e;
    }
  }
}
