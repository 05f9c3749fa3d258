// IETF Token Status List (draft-ietf-oauth-status-list), as wallet/status.py reads it:
// {"bits": 1|2|4|8, "lst": base64url(ZLIB(bytes))}, entries packed LSB first. The
// inflated size is capped before it is reached, so a ZLIB bomb costs nothing.

import { b64urlDecode, isInt, isObject } from "./codec.js";
import { InflateError, inflateZlib } from "./inflate.js";

export const VALID = 0;
export const INVALID = 1;
export const SUSPENDED = 2;
export const DEFAULT_MAX_SIZE = 16 * 1024 * 1024;
const ALLOWED_BITS = [1, 2, 4, 8];
const ALLOWED_MEMBERS = ["bits", "lst", "aggregation_uri"];

export class StatusListProblem extends Error {}

export class StatusList {
  constructor(data, bits) {
    this.data = data;
    this.bits = bits;
    this.mask = (1 << bits) - 1;
    this.size = Math.floor((data.length * 8) / bits);
  }

  /** The status at a whole-number index inside the list (the caller checks the range). */
  get(index) {
    const position = Number(index) * this.bits;
    return (this.data[position >> 3] >> (position & 7)) & this.mask;
  }

  static fromClaim(claim, maxSize = DEFAULT_MAX_SIZE) {
    if (!isObject(claim)) throw new StatusListProblem("status_list claim must be a JSON object");
    const names = Object.keys(claim);
    if (!Object.hasOwn(claim, "bits") || !Object.hasOwn(claim, "lst")) {
      throw new StatusListProblem("status_list claim lacks bits or lst");
    }
    if (names.some((name) => !ALLOWED_MEMBERS.includes(name))) {
      throw new StatusListProblem("status_list claim has unknown members");
    }
    const { bits, lst } = claim;
    if (!isInt(bits)) throw new StatusListProblem("status_list bits must be an integer");
    if (typeof lst !== "string") throw new StatusListProblem("status_list lst must be a string");
    if (Object.hasOwn(claim, "aggregation_uri") && typeof claim.aggregation_uri !== "string") {
      throw new StatusListProblem("status_list aggregation_uri must be a string");
    }
    if (!ALLOWED_BITS.includes(Number(bits))) {
      throw new StatusListProblem("status list bits must be 1, 2, 4 or 8");
    }
    if (!lst) throw new StatusListProblem("status list lst is empty");
    const maxCompressed = maxSize + Math.floor(maxSize / 64) + 1024;
    if (lst.length > Math.floor((maxCompressed * 4 + 2) / 3)) {
      throw new StatusListProblem("status list lst is longer than any list within the size cap");
    }
    let data;
    try {
      data = inflateZlib(b64urlDecode(lst, "status list lst"), maxSize);
    } catch (error) {
      if (error instanceof InflateError || error.code) throw new StatusListProblem(error.message);
      throw error;
    }
    if (!data.length) throw new StatusListProblem("status list is empty");
    return new StatusList(data, Number(bits));
  }
}
