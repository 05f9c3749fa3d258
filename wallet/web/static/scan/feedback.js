// A sound and a vibration per verdict, distinct enough to tell apart without
// looking: one high tone for green, two low for red, three middle for amber.

const PATTERNS = {
  green: { tones: [[1046, 0.18]], vibrate: [120] },
  red: { tones: [[220, 0.3], [0, 0.12], [220, 0.3]], vibrate: [300, 120, 300] },
  amber: { tones: [[523, 0.14], [0, 0.08], [523, 0.14], [0, 0.08], [523, 0.14]], vibrate: [120, 80, 120, 80, 120] },
};

let audio = null;

/** Browsers allow sound only after a tap: call this from one. */
export function unlockSound() {
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") {
      audio.resume();
    }
  } catch {
    audio = null; // no Web Audio: vibration and the screen still speak
  }
}

export function signal(tone) {
  const pattern = PATTERNS[tone] ?? PATTERNS.red;
  try {
    navigator.vibrate?.(pattern.vibrate);
  } catch {
    // not every browser lets a page vibrate
  }
  if (!audio || audio.state !== "running") {
    return;
  }
  let at = audio.currentTime;
  for (const [frequency, seconds] of pattern.tones) {
    if (frequency > 0) {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.type = "square";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.15, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + seconds);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(at);
      oscillator.stop(at + seconds);
    }
    at += seconds;
  }
}
