// The rear camera and the QR decoder: the browser's own BarcodeDetector where it
// has one for QR codes, else ZXing (WebAssembly) in a worker. One frame is decoded
// at a time; the next is taken only when the decoder is free, so a slow phone
// drops frames instead of piling them up.

const WORKER_URL = new URL("./decoder-worker.js", import.meta.url);
const MAX_SIDE = 1280; // larger frames cost time and add no modules a QR code needs

/** A decoder: {decode(source, width, height) -> Promise<string | null>, kind}. */
export async function makeDecoder() {
  if ("BarcodeDetector" in globalThis) {
    try {
      const formats = await globalThis.BarcodeDetector.getSupportedFormats();
      if (formats.includes("qr_code")) {
        const detector = new globalThis.BarcodeDetector({ formats: ["qr_code"] });
        return {
          kind: "native",
          async decode(source) {
            const [found] = await detector.detect(source);
            return found ? found.rawValue : null;
          },
        };
      }
    } catch {
      // fall through to ZXing
    }
  }
  return workerDecoder();
}

function workerDecoder() {
  const worker = new Worker(WORKER_URL, { type: "module" });
  const waiting = new Map();
  let next = 0;
  const ready = new Promise((resolve, reject) => {
    worker.addEventListener("message", function first(event) {
      if ("ready" in event.data) {
        worker.removeEventListener("message", first);
        if (event.data.ready) {
          resolve();
        } else {
          reject(new Error(event.data.error));
        }
      }
    });
    worker.addEventListener("error", (event) => reject(new Error(event.message || "worker failed")));
  });
  worker.addEventListener("message", (event) => {
    const { id, text, error } = event.data;
    const pending = waiting.get(id);
    if (pending) {
      waiting.delete(id);
      error ? pending.reject(new Error(error)) : pending.resolve(text);
    }
  });
  // Older Safari has no OffscreenCanvas: a detached canvas element does the same here.
  const canvas = typeof OffscreenCanvas === "function" ? new OffscreenCanvas(1, 1) : document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return ready.then(() => ({
    kind: "zxing",
    decode(source, width, height) {
      const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      context.drawImage(source, 0, 0, canvas.width, canvas.height);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const id = next++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.postMessage({ id, image }, [image.data.buffer]);
      });
    },
  }));
}

/**
 * A running camera on `video`, scanning until stopped or paused.
 * onText(text, frameAt) gets each QR text read; frameAt is when its frame was taken
 * (performance.now()), for the frame-to-verdict time.
 */
export class Camera {
  constructor(video, { decoder, onText }) {
    this.video = video;
    this.decoder = decoder;
    this.onText = onText;
    this.stream = null;
    this.paused = false;
    this.torchOn = false;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
    });
    this.video.srcObject = this.stream;
    await this.video.play();
    this.loop();
  }

  get track() {
    return this.stream?.getVideoTracks()[0];
  }

  /** True when the camera has a light that can be switched. */
  get hasTorch() {
    const capabilities = this.track?.getCapabilities?.() ?? {};
    return Boolean(capabilities.torch);
  }

  async toggleTorch() {
    this.torchOn = !this.torchOn;
    await this.track.applyConstraints({ advanced: [{ torch: this.torchOn }] });
    return this.torchOn;
  }

  pause() {
    this.paused = true;
  }

  resume() {
    this.paused = false;
  }

  async loop() {
    while (this.stream) {
      const frameAt = await nextFrame(this.video); // when this frame was put on screen
      if (this.paused || this.video.readyState < 2) {
        continue;
      }
      let text = null;
      try {
        text = await this.decoder.decode(this.video, this.video.videoWidth, this.video.videoHeight);
      } catch {
        continue; // one bad frame; the next may do
      }
      if (text && !this.paused) {
        this.onText(text, frameAt);
      }
    }
  }

  stop() {
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
  }
}

/** The next camera frame; resolves with when it was presented (performance.now() time). */
function nextFrame(video) {
  return new Promise((resolve) => {
    if (video.requestVideoFrameCallback) {
      video.requestVideoFrameCallback((now) => resolve(now));
    } else {
      setTimeout(() => resolve(performance.now()), 50);
    }
  });
}
