// The reasons a check fails, as the Python verifier's error tree names them
// (wallet/errors.py): every thrown VerifyError carries one stable reason code,
// so a failure deep inside the decoder becomes the same verdict in both languages.

export class VerifyError extends Error {
  constructor(code, message, claims = null) {
    super(message);
    this.code = code;
    this.claims = claims; // set once a signature checked out: show what the pass says
  }
}

export class BundleError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code; // bundle_invalid, bundle_expired or bundle_rollback
  }
}

export const fail = (code, message) => {
  throw new VerifyError(code, message);
};
