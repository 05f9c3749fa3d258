// QR decoding off the main thread: ZXing compiled to WebAssembly, loaded from this
// service (never a CDN). Receives {id, image: ImageData}; answers {id, text} with
// the first QR code's text, or {id, text: null}, or {id, error}.

import { prepareZXingModule, readBarcodes } from "./vendor/zxing-wasm/es/reader/index.js";

const WASM = new URL("./vendor/zxing-wasm/reader/zxing_reader.wasm", import.meta.url).href;

prepareZXingModule({
  overrides: {
    // ZXing would fetch its .wasm from a CDN by default: point it at our copy.
    locateFile: (path, prefix) => (path.endsWith(".wasm") ? WASM : prefix + path),
  },
  fireImmediately: true,
}).then(
  () => self.postMessage({ ready: true }),
  (error) => self.postMessage({ ready: false, error: String(error) }),
);

const OPTIONS = {
  formats: ["QRCode"],
  tryHarder: true,
  maxNumberOfSymbols: 1,
};

self.onmessage = async (event) => {
  const { id, image } = event.data;
  try {
    const [found] = await readBarcodes(image, OPTIONS);
    self.postMessage({ id, text: found && found.isValid ? found.text : null });
  } catch (error) {
    self.postMessage({ id, error: String(error) });
  }
};
