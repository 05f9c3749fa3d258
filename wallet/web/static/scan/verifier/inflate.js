// DEFLATE (RFC 1951) and its ZLIB wrapper (RFC 1950), strict and bounded.
//
// Why not DecompressionStream: the twin must judge a QR text exactly as Python's
// zlib does on every phone, and the stream API does not tell where a stream ends
// (Node ignores bytes after it, Chromium throws), nor stop at an output cap before
// the work is done. This decoder follows Mark Adler's puff.c: it refuses what zlib
// refuses (bad block types, bad lengths, over-subscribed or incomplete codes,
// distances beyond the output), stops as soon as the output would pass `maxOutput`,
// and reports trailing input. Errors are thrown as `InflateError`.

export class InflateError extends Error {}

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
  67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
  5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513,
  769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
  11, 11, 12, 12, 13, 13];
const ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const MAX_BITS = 15;

class Huffman {
  // Canonical code from code lengths; `left` > 0 means incomplete, < 0 over-subscribed.
  constructor(lengths) {
    this.count = new Uint16Array(MAX_BITS + 1);
    this.symbol = new Uint16Array(lengths.length);
    for (const len of lengths) this.count[len] += 1;
    let left = 1;
    this.left = 0;
    if (this.count[0] === lengths.length) return; // no codes: complete, but useless
    for (let len = 1; len <= MAX_BITS; len += 1) {
      left = left * 2 - this.count[len];
      if (left < 0) {
        this.left = left;
        return;
      }
    }
    this.left = left;
    const offs = new Uint16Array(MAX_BITS + 1);
    for (let len = 1; len < MAX_BITS; len += 1) offs[len + 1] = offs[len] + this.count[len];
    lengths.forEach((len, symbol) => {
      if (len !== 0) {
        this.symbol[offs[len]] = symbol;
        offs[len] += 1;
      }
    });
  }
}

class Inflater {
  constructor(input, start, maxOutput) {
    this.input = input;
    this.pos = start;
    this.bitbuf = 0;
    this.bitcnt = 0;
    this.max = maxOutput;
    this.out = new Uint8Array(Math.min(maxOutput + 1, Math.max(1024, input.length * 4)));
    this.len = 0;
  }

  bits(need) {
    let val = this.bitbuf;
    while (this.bitcnt < need) {
      if (this.pos >= this.input.length) throw new InflateError("the compressed data is truncated");
      val |= this.input[this.pos] << this.bitcnt;
      this.pos += 1;
      this.bitcnt += 8;
    }
    this.bitbuf = val >>> need;
    this.bitcnt -= need;
    return val & ((1 << need) - 1);
  }

  put(byte) {
    if (this.len >= this.max) throw new InflateError("the compressed data inflates beyond the limit");
    if (this.len === this.out.length) {
      const grown = new Uint8Array(Math.min(this.max + 1, this.out.length * 2));
      grown.set(this.out);
      this.out = grown;
    }
    this.out[this.len] = byte;
    this.len += 1;
  }

  decode(h) {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= MAX_BITS; len += 1) {
      code |= this.bits(1);
      const count = h.count[len];
      if (code - count < first) return h.symbol[index + (code - first)];
      index += count;
      first = (first + count) * 2;
      code *= 2;
    }
    throw new InflateError("the compressed data has an invalid code");
  }

  stored() {
    this.bitbuf = 0;
    this.bitcnt = 0;
    if (this.pos + 4 > this.input.length) throw new InflateError("the compressed data is truncated");
    const len = this.input[this.pos] | (this.input[this.pos + 1] << 8);
    const nlen = this.input[this.pos + 2] | (this.input[this.pos + 3] << 8);
    this.pos += 4;
    if (len !== (~nlen & 0xffff)) throw new InflateError("a stored block's length is corrupt");
    if (this.pos + len > this.input.length) throw new InflateError("the compressed data is truncated");
    for (let i = 0; i < len; i += 1) this.put(this.input[this.pos + i]);
    this.pos += len;
  }

  codes(lencode, distcode) {
    for (;;) {
      let symbol = this.decode(lencode);
      if (symbol < 256) {
        this.put(symbol);
        continue;
      }
      if (symbol === 256) return;
      symbol -= 257;
      if (symbol >= 29) throw new InflateError("the compressed data has an invalid length");
      const len = LENGTH_BASE[symbol] + this.bits(LENGTH_EXTRA[symbol]);
      const dsym = this.decode(distcode);
      if (dsym >= 30) throw new InflateError("the compressed data has an invalid distance");
      const dist = DIST_BASE[dsym] + this.bits(DIST_EXTRA[dsym]);
      if (dist > this.len) throw new InflateError("the compressed data reaches back too far");
      for (let i = 0; i < len; i += 1) this.put(this.out[this.len - dist]);
    }
  }

  fixed() {
    const lengths = new Array(288);
    lengths.fill(8, 0, 144).fill(9, 144, 256).fill(7, 256, 280).fill(8, 280, 288);
    this.codes(new Huffman(lengths), new Huffman(new Array(30).fill(5)));
  }

  dynamic() {
    const nlen = this.bits(5) + 257;
    const ndist = this.bits(5) + 1;
    const ncode = this.bits(4) + 4;
    if (nlen > 286 || ndist > 30) throw new InflateError("the compressed data has bad counts");
    const lengths = new Array(19).fill(0);
    for (let i = 0; i < ncode; i += 1) lengths[ORDER[i]] = this.bits(3);
    const lencode = new Huffman(lengths);
    if (lencode.left !== 0) throw new InflateError("the compressed data has an incomplete code");
    const all = [];
    while (all.length < nlen + ndist) {
      let symbol = this.decode(lencode);
      if (symbol < 16) {
        all.push(symbol);
        continue;
      }
      let repeat = 0;
      let len = 0;
      if (symbol === 16) {
        if (all.length === 0) throw new InflateError("the compressed data repeats nothing");
        len = all[all.length - 1];
        repeat = 3 + this.bits(2);
      } else if (symbol === 17) {
        repeat = 3 + this.bits(3);
      } else {
        repeat = 11 + this.bits(7);
      }
      if (all.length + repeat > nlen + ndist) throw new InflateError("too many code lengths");
      for (; repeat > 0; repeat -= 1) all.push(len);
      symbol = 0;
    }
    if (all[256] === 0) throw new InflateError("the compressed data has no end-of-block code");
    const litcode = new Huffman(all.slice(0, nlen));
    if (litcode.left < 0 || (litcode.left > 0 && nlen - litcode.count[0] !== 1)) {
      throw new InflateError("the compressed data has an incomplete literal code");
    }
    const distcode = new Huffman(all.slice(nlen));
    if (distcode.left < 0 || (distcode.left > 0 && ndist - distcode.count[0] !== 1)) {
      throw new InflateError("the compressed data has an incomplete distance code");
    }
    this.codes(litcode, distcode);
  }

  run() {
    let last = 0;
    do {
      last = this.bits(1);
      const type = this.bits(2);
      if (type === 0) this.stored();
      else if (type === 1) this.fixed();
      else if (type === 2) this.dynamic();
      else throw new InflateError("the compressed data has an invalid block type");
    } while (!last);
    return this.out.subarray(0, this.len);
  }
}

/** One complete raw DEFLATE stream spanning all of `input`, at most `maxOutput` bytes. */
export function inflateRaw(input, maxOutput) {
  const inflater = new Inflater(input, 0, maxOutput);
  const data = inflater.run();
  if (inflater.pos !== input.length) throw new InflateError("data follows the compressed stream");
  return data;
}

/** One complete ZLIB stream (RFC 1950, no preset dictionary) with a matching Adler-32. */
export function inflateZlib(input, maxOutput) {
  if (input.length < 2) throw new InflateError("the compressed data is truncated");
  const cmf = input[0];
  const flg = input[1];
  if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0 || flg & 0x20) {
    throw new InflateError("the data is not a ZLIB stream");
  }
  const inflater = new Inflater(input, 2, maxOutput);
  const data = inflater.run();
  const end = inflater.pos;
  if (end + 4 > input.length) throw new InflateError("the compressed data is truncated");
  const stored = ((input[end] << 24) | (input[end + 1] << 16) | (input[end + 2] << 8) | input[end + 3]) >>> 0;
  if (stored !== adler32(data)) throw new InflateError("the compressed data's checksum is wrong");
  if (end + 4 !== input.length) throw new InflateError("data follows the compressed stream");
  return data;
}

function adler32(data) {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i += 1) {
    a = (a + data[i]) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}
