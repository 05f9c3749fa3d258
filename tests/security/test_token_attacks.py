"""One test per attack on a pass token, each checking the exact verdict.

Hostile tokens are built by hand (:mod:`tests.security.forge`): base64url of
JSON we write, signed with ``cryptography`` directly. Where only a header or
claim check can stop an attack, the token carries a genuine signature by the
city's own pass key, so a passing test proves that check, not a lucky failure
further down.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.factories import ISSUER, NOW, City, status_uri
from tests.security import forge
from wallet.jws import (
    sign_jws,
)
from wallet.keys import KeyState
from wallet.qrtext import encode_qr_text
from wallet.status import INVALID, MIN_LIST_SIZE, SUSPENDED
from wallet.tokens import (
    MAX_PASS_TOKEN_LENGTH,
    MAX_VALIDITY,
    verify_pass_token,
)
from wallet.verifier import VerificationResult, Verifier

# The order of the P-256 group (SEC 2), for signatures with out-of-range r and s.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def verdict(result: VerificationResult) -> tuple[str, str]:
    return result.state, result.reason


def assert_forged(result: VerificationResult, state: str, reason: str) -> None:
    """Rejected with exactly this verdict, and nothing of the token shown as fact."""
    assert verdict(result) == (state, reason), result.detail
    assert result.claims == {}
    assert not result.valid


def city_signed(city: City, header: forge.Part, payload: forge.Part) -> str:
    """A token genuinely signed by the city's pass key over exactly these bytes."""
    return forge.jws(header, payload, sign=forge.signer_for(city.key.key))


def sign_claims(city: City, claims: dict[str, Any]) -> str:
    """Genuinely signed claims, through our low-level signer (it signs anything)."""
    return sign_jws(claims, city.key, typ="pass+jwt")


@pytest.fixture
def verifier(city: City) -> Verifier:
    return city.verifier()


def test_genuine_forge_token_is_valid(city: City, verifier: Verifier) -> None:
    """Control: a hand-built token with a proper header is accepted, so rejections below
    come from the one thing each test changes."""
    token = city_signed(city, forge.header(city.key.kid), forge.pass_claims())
    assert verdict(verifier.check(token, now=NOW)) == ("valid", "ok")
    assert verdict(verifier.check(encode_qr_text(token), now=NOW)) == ("valid", "ok")


# -- 1. alg none ----------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling", ["none", "None", "NONE", "nOnE", " none", "none ", "\tnone\n", "\u00a0none"]
)
@pytest.mark.parametrize("form", ["empty_signature", "city_signature", "junk_signature"])
def test_rejects_alg_none(city: City, verifier: Verifier, spelling: str, form: str) -> None:
    head, claims = forge.header(city.key.kid, alg=spelling), forge.pass_claims()
    if form == "empty_signature":  # the RFC 7519 unsecured JWS: "header.payload."
        token = forge.jws(head, claims)
        assert token.endswith(".")
    elif form == "city_signature":
        token = city_signed(city, head, claims)
    else:
        token = forge.jws(head, claims, signature=b"\x00" * 64)
    assert_forged(verifier.check(token, now=NOW), "invalid", "alg_none")


def test_rejects_alg_none_inside_qr_text(city: City, verifier: Verifier) -> None:
    token = city_signed(city, forge.header(city.key.kid, alg="none"), forge.pass_claims())
    assert_forged(verifier.check(encode_qr_text(token), now=NOW), "invalid", "alg_none")


# -- 2. an algorithm other than the key's ---------------------------------------


@pytest.mark.parametrize(
    "alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "HS256", "ES256K", "es256", "ES256 "]
)
def test_rejects_algorithm_not_pinned_to_the_key(city: City, verifier: Verifier, alg: str) -> None:
    # The signature is a genuine ES256 one by the kid's key: only the pin can refuse it.
    token = city_signed(city, forge.header(city.key.kid, alg=alg), forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "alg_mismatch")


def test_rejects_es256_header_on_an_eddsa_key(city: City) -> None:
    ed_key = city.add_key(alg="EdDSA")
    verifier = city.verifier()
    assert isinstance(ed_key.key, ed25519.Ed25519PrivateKey)
    assert verdict(verifier.check(city.issue(key=ed_key), now=NOW)) == ("valid", "ok")
    head, claims = forge.header(ed_key.kid, alg="ES256"), forge.pass_claims()
    for signer in (forge.eddsa_signer(ed_key.key), forge.signer_for(city.key.key)):
        token = forge.jws(head, claims, sign=signer)
        assert_forged(verifier.check(token, now=NOW), "invalid", "alg_mismatch")


# -- 3. HS256 with the public key as the HMAC secret ----------------------------


@pytest.mark.parametrize("secret_form", ["pem", "pem_stripped", "jwk_json", "jwk_thumbprint_json"])
def test_rejects_hs256_signed_with_the_public_key(
    city: City, verifier: Verifier, secret_form: str
) -> None:
    public = city.key.public()
    secret = {
        "pem": public.pem(),
        "pem_stripped": public.pem().strip(),
        "jwk_json": json.dumps(public.jwk()).encode(),
        "jwk_thumbprint_json": json.dumps(
            {k: public.jwk()[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":")
        ).encode(),
    }[secret_form]
    token = forge.jws(
        forge.header(city.key.kid, alg="HS256"),
        forge.pass_claims(),
        sign=forge.hmac_signer(secret),
    )
    assert_forged(verifier.check(token, now=NOW), "invalid", "alg_mismatch")


# -- 4. ES256 signed with a P-384 key -------------------------------------------


@pytest.mark.parametrize("variant", ["raw_96", "first_64", "last_halves_64", "padded_128"])
def test_rejects_es256_signed_with_a_p384_key(city: City, verifier: Verifier, variant: str) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())

    def sign(data: bytes) -> bytes:
        raw = forge.ecdsa_signer(p384)(data)  # 48-byte r || 48-byte s
        assert len(raw) == 96
        r, s = raw[:48], raw[48:]
        return {
            "raw_96": raw,
            "first_64": raw[:64],
            "last_halves_64": r[-32:] + s[-32:],
            "padded_128": b"\x00" * 16 + r + b"\x00" * 16 + s,
        }[variant]

    token = forge.jws(forge.header(city.key.kid), forge.pass_claims(), sign=sign)
    assert_forged(verifier.check(token, now=NOW), "invalid", "bad_signature")


def test_rejects_signature_by_an_attacker_key_under_our_kid(city: City, verifier: Verifier) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = forge.jws(
        forge.header(city.key.kid), forge.pass_claims(), sign=forge.ecdsa_signer(attacker)
    )
    assert_forged(verifier.check(token, now=NOW), "invalid", "bad_signature")


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 0), (0, 1), (1, 0), (P256_ORDER, P256_ORDER), (2**256 - 1, 2**256 - 1)],
    ids=["zero", "r_zero", "s_zero", "order", "all_ones"],
)
def test_rejects_psychic_signature(city: City, verifier: Verifier, r: int, s: int) -> None:
    """CVE-2022-21449: an all-zero (or out-of-range) r, s must never verify."""
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    token = forge.jws(forge.header(city.key.kid), forge.pass_claims(), signature=signature)
    assert_forged(verifier.check(token, now=NOW), "invalid", "bad_signature")


# -- 5. unknown kid -------------------------------------------------------------


@pytest.mark.parametrize("kid_form", ["attacker", "swapped_case", "prefix", "empty", "long"])
def test_rejects_unknown_kid(city: City, verifier: Verifier, kid_form: str) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    kid = {
        "attacker": "AttackKy",
        "swapped_case": city.key.kid.swapcase(),
        "prefix": city.key.kid[:4],
        "empty": "",
        "long": city.key.kid * 20,
    }[kid_form]
    assert kid != city.key.kid
    token = forge.jws(forge.header(kid), forge.pass_claims(), sign=forge.ecdsa_signer(attacker))
    assert_forged(verifier.check(token, now=NOW), "unknown_key", "unknown_kid")


def test_rejects_pass_signed_by_the_trust_root(city: City, verifier: Verifier) -> None:
    """The root signs bundles only; a verifier never even looks it up for a pass."""
    token = forge.jws(
        forge.header(city.root.kid), forge.pass_claims(), sign=forge.signer_for(city.root.key)
    )
    assert_forged(verifier.check(token, now=NOW), "unknown_key", "unknown_kid")


@pytest.mark.parametrize("kid", [None, 1, ["kid"], {"kid": "x"}, True])
def test_rejects_non_text_kid(city: City, verifier: Verifier, kid: object) -> None:
    token = city_signed(city, {"alg": "ES256", "kid": kid, "typ": "pass+jwt"}, forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "bad_header")


# -- 6. wrong or missing typ ----------------------------------------------------


@pytest.mark.parametrize(
    "typ",
    [
        "JWT",
        "jwt",
        "statuslist+jwt",
        "wallet-bundle+jwt",
        "pass+jws",
        "pass+jwt ",
        " pass+jwt",
        "pass",
        "",
        "\u0440ass+jwt",  # Cyrillic er, a lookalike of "p"
        "pass\u200b+jwt",  # zero-width space
        None,
        1,
        ["pass+jwt"],
    ],
)
def test_rejects_wrong_typ(city: City, verifier: Verifier, typ: object) -> None:
    token = city_signed(
        city, {"alg": "ES256", "kid": city.key.kid, "typ": typ}, forge.pass_claims()
    )
    assert_forged(verifier.check(token, now=NOW), "invalid", "wrong_typ")


def test_rejects_missing_typ(city: City, verifier: Verifier) -> None:
    """A header without typ lacks a required member: a header error, not a type error."""
    token = city_signed(city, {"alg": "ES256", "kid": city.key.kid}, forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "bad_header")


def test_rejects_typ_with_application_prefix(city: City, verifier: Verifier) -> None:
    """RFC 7515 would let "application/pass+jwt" mean pass+jwt; we accept only the short form."""
    head = forge.header(city.key.kid, typ="application/pass+jwt")
    token = city_signed(city, head, forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "wrong_typ")


@pytest.mark.parametrize("typ", ["PASS+JWT", "Pass+Jwt", "pass+JWT"])
def test_accepts_typ_in_any_case(city: City, verifier: Verifier, typ: str) -> None:
    """By design: typ is a media type, and RFC 2045 media types are case-insensitive."""
    token = city_signed(city, forge.header(city.key.kid, typ=typ), forge.pass_claims())
    assert verdict(verifier.check(token, now=NOW)) == ("valid", "ok")


# -- 7. a status list token presented as a pass ---------------------------------


@pytest.mark.parametrize("uri", [status_uri("library"), status_uri("parking")])
def test_rejects_status_list_token_presented_as_pass(
    city: City, verifier: Verifier, uri: str
) -> None:
    token = city.status_tokens()[uri]  # genuine, signed by a trusted key
    assert forge.segments(token)[0]["typ"] == "statuslist+jwt"
    assert_forged(verifier.check(token, now=NOW), "invalid", "wrong_typ")
    assert_forged(verifier.check(encode_qr_text(token), now=NOW), "invalid", "wrong_typ")


def test_rejects_status_list_token_retyped_and_resigned_by_attacker(
    city: City, verifier: Verifier
) -> None:
    _, payload, _ = forge.segments(city.status_tokens()[status_uri("library")])
    attacker = ec.generate_private_key(ec.SECP256R1())
    sign = forge.ecdsa_signer(attacker)
    under_our_kid = forge.jws(forge.header(city.key.kid), payload, sign=sign)
    assert_forged(verifier.check(under_our_kid, now=NOW), "invalid", "bad_signature")
    under_own_kid = forge.jws(forge.header("AttackKy"), payload, sign=sign)
    assert_forged(verifier.check(under_own_kid, now=NOW), "unknown_key", "unknown_kid")


def test_rejects_status_list_payload_signed_as_pass_by_city_key(
    city: City, verifier: Verifier
) -> None:
    """Even with the city's own signature, a status list's claims are not a pass's."""
    _, payload, _ = forge.segments(city.status_tokens()[status_uri("library")])
    token = city_signed(city, forge.header(city.key.kid), payload)
    assert_forged(verifier.check(token, now=NOW), "invalid", "bad_claim")


# -- 8. crit --------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"]},
        {"crit": []},
        {"crit": ["b64"], "b64": False},
        {"crit": "b64"},
        {"crit": None},
    ],
    ids=["exp", "empty", "b64_false", "not_a_list", "null"],
)
def test_rejects_crit_header(city: City, verifier: Verifier, extra: dict[str, Any]) -> None:
    token = city_signed(city, forge.header(city.key.kid, **extra), forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "crit_header")


# -- 9. headers that name where to fetch a key ----------------------------------


def _key_headers() -> dict[str, Any]:
    attacker = ec.generate_private_key(ec.SECP256R1())
    numbers = attacker.public_key().public_numbers()
    return {
        "jku": "https://evil.example/jwks.json",
        "x5u": "https://evil.example/cert.pem",
        "jwk": {
            "kty": "EC",
            "crv": "P-256",
            "x": forge.b64url(numbers.x.to_bytes(32, "big")),
            "y": forge.b64url(numbers.y.to_bytes(32, "big")),
        },
        "x5c": [base64.b64encode(b"0\x82\x01\x00 not really a certificate").decode()],
    }


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "all"])
def test_rejects_key_carrying_header(city: City, verifier: Verifier, name: str) -> None:
    candidates = _key_headers()
    extra = candidates if name == "all" else {name: candidates[name]}
    token = city_signed(city, forge.header(city.key.kid, **extra), forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "forbidden_header")


@pytest.mark.parametrize(
    "extra",
    [{"cty": "JWT"}, {"zip": "DEF"}, {"x5t": "AAAA"}, {"b64": False}, {"iss": ISSUER}],
    ids=["cty", "zip", "x5t", "b64", "iss"],
)
def test_rejects_unexpected_header_member(
    city: City, verifier: Verifier, extra: dict[str, Any]
) -> None:
    token = city_signed(city, forge.header(city.key.kid, **extra), forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "bad_header")


# -- 10. malformed encodings ----------------------------------------------------


@pytest.fixture
def token(city: City) -> str:
    return city.issue("library")


@pytest.mark.parametrize("segment", [0, 1, 2])
@pytest.mark.parametrize("char", ["+", "/", "*", "!", "%", "\\", "\x00", "é"])
def test_rejects_non_base64url_characters(
    verifier: Verifier, token: str, segment: int, char: str
) -> None:
    parts = token.split(".")
    parts[segment] = parts[segment][:5] + char + parts[segment][6:]
    assert_forged(verifier.check(".".join(parts), now=NOW), "invalid", "malformed")


@pytest.mark.parametrize("segment", [0, 1, 2])
@pytest.mark.parametrize("padding", ["=", "==", "==="])
def test_rejects_base64_padding(verifier: Verifier, token: str, segment: int, padding: str) -> None:
    parts = token.split(".")
    parts[segment] += padding
    assert_forged(verifier.check(".".join(parts), now=NOW), "invalid", "malformed")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: " " + t,
        lambda t: t + " ",
        lambda t: t + "\n",
        lambda t: t + "\r\n",
        lambda t: "\t" + t,
        lambda t: t[:30] + " " + t[30:],
        lambda t: t[:30] + "\t" + t[30:],
        lambda t: t[:30] + "\n" + t[30:],
        lambda t: t.replace(".", "\n.", 1),
        lambda t: t.replace(".", ". ", 1),
        lambda t: t[:-5] + "\u00a0" + t[-5:],
    ],
    ids=[
        "lead_space",
        "trail_space",
        "trail_lf",
        "trail_crlf",
        "lead_tab",
        "inner_space",
        "inner_tab",
        "inner_lf",
        "lf_before_dot",
        "space_after_dot",
        "nbsp_in_signature",
    ],
)
def test_rejects_whitespace(verifier: Verifier, token: str, mutate: Any) -> None:
    assert_forged(verifier.check(mutate(token), now=NOW), "invalid", "malformed")


def test_rejects_byte_order_mark(city: City, verifier: Verifier, token: str) -> None:
    assert_forged(verifier.check("\ufeff" + token, now=NOW), "invalid", "malformed")
    # A BOM inside the signed header JSON, genuinely signed: still not our JSON.
    head = "\ufeff" + json.dumps(forge.header(city.key.kid))
    signed = city_signed(city, head, forge.pass_claims())
    assert_forged(verifier.check(signed, now=NOW), "invalid", "malformed")


@pytest.mark.parametrize("junk", [".", ".x", "..", "#x", "\x00", "~", "?a=1", ";", "=="])
def test_rejects_trailing_junk(verifier: Verifier, token: str, junk: str) -> None:
    assert_forged(verifier.check(token + junk, now=NOW), "invalid", "malformed")


def test_rejects_signature_with_appended_bytes(verifier: Verifier, token: str) -> None:
    """Canonical base64url, but 67 bytes are not an ES256 signature."""
    assert_forged(verifier.check(token + "AAAA", now=NOW), "invalid", "bad_signature")


@pytest.mark.parametrize("count", [1, 2, 4, 5])
def test_rejects_wrong_number_of_segments(verifier: Verifier, token: str, count: int) -> None:
    parts = token.split(".")
    text = ".".join((parts * 2)[:count])  # 5 segments is the shape of a JWE
    assert_forged(verifier.check(text, now=NOW), "invalid", "malformed")


@pytest.mark.parametrize("empty", [0, 1, 2])
def test_rejects_empty_segments(verifier: Verifier, token: str, empty: int) -> None:
    parts = token.split(".")
    parts[empty] = ""
    assert_forged(verifier.check(".".join(parts), now=NOW), "invalid", "malformed")
    for text in ("", ".", "..", "...", "WP1"):
        assert_forged(verifier.check(text, now=NOW), "invalid", "malformed")


def _non_canonical(segment: str) -> str:
    """The same bytes, but the last character has nonzero unused bits."""
    data = forge.b64url_decode(segment)
    for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        candidate = segment[:-1] + char
        if candidate != segment and forge.b64url_decode(candidate) == data:
            return candidate
    raise AssertionError(f"{len(segment)} characters have no unused bits")


def _partial_group(text: str) -> bytes:
    """JSON bytes padded with spaces so their base64url ends in a partial group."""
    while len(text.encode()) % 3 != 1:
        text += " "
    return text.encode()


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_rejects_non_canonical_base64url(city: City, verifier: Verifier, segment: int) -> None:
    # Header and payload end in a partial base64url group (trailing spaces are valid
    # JSON); the signature covers the non-canonical text itself, so a lenient
    # decoder would accept this token as genuine.
    head, body = (
        forge.b64url(_partial_group(json.dumps(part, separators=(",", ":"))))
        for part in (forge.header(city.key.kid), forge.pass_claims())
    )
    sign = forge.signer_for(city.key.key)
    canonical = f"{head}.{body}.{forge.b64url(sign(f'{head}.{body}'.encode()))}"
    assert verdict(verifier.check(canonical, now=NOW)) == ("valid", "ok")
    parts = [head, body]
    if segment < 2:
        parts[segment] = _non_canonical(parts[segment])
    signature = forge.b64url(sign(".".join(parts).encode("ascii")))
    if segment == 2:
        signature = _non_canonical(signature)
    text = ".".join([*parts, signature])
    assert_forged(verifier.check(text, now=NOW), "invalid", "malformed")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace(".", "\u2024"),  # ONE DOT LEADER
        lambda t: t.replace(".", "\uff0e"),  # FULLWIDTH FULL STOP
        lambda t: t.replace(".", "\u3002"),  # IDEOGRAPHIC FULL STOP
        lambda t: t.replace("e", "\u0435", 1),  # Cyrillic ie
        lambda t: t.replace("A", "\u0391", 1),  # Greek Alpha
        lambda t: t.replace("-", "\u2010", 1) if "-" in t else t[:9] + "\u2010" + t[10:],
        lambda t: t[:9] + "\uff41" + t[10:],  # FULLWIDTH a
        lambda t: t[:9] + "\U0001d7ce" + t[10:],  # MATHEMATICAL BOLD DIGIT ZERO
    ],
    ids=["dot_leader", "fullwidth_stop", "ideographic_stop", "cyrillic_e", "greek_alpha",
         "hyphen", "fullwidth_a", "math_zero"],
)  # fmt: skip
def test_rejects_unicode_lookalikes(verifier: Verifier, token: str, mutate: Any) -> None:
    text = mutate(token)
    assert text != token
    assert_forged(verifier.check(text, now=NOW), "invalid", "malformed")


def test_rejects_unicode_lookalikes_in_qr_text(city: City, verifier: Verifier) -> None:
    qr = city.issue_qr("library")
    arabic = qr[:3] + "".join(chr(0x0660 + int(d)) for d in qr[3:])  # Arabic-Indic digits
    fullwidth = "\uff37\uff30\uff11" + qr[3:]  # fullwidth W, P and 1
    math_digits = qr[:3] + "".join(chr(0x1D7CE + int(d)) for d in qr[3:])
    for text in (arabic, fullwidth, math_digits):
        assert_forged(verifier.check(text, now=NOW), "invalid", "malformed")


# -- 11. duplicate JSON members -------------------------------------------------


def _with_member(document: dict[str, Any], raw_member: str) -> str:
    """JSON text of ``document`` with one more member written by hand at the end."""
    text = json.dumps(document, separators=(",", ":"))
    return text[:-1] + "," + raw_member + "}"


@pytest.mark.parametrize(
    "raw_member",
    ['"alg":"none"', '"alg":"ES256"', '"kid":"AttackKy"', '"typ":"statuslist+jwt"',
     '"\\u0074yp":"pass+jwt"'],
    ids=["alg_none", "alg_same", "kid", "typ", "escaped_typ"],
)  # fmt: skip
def test_rejects_duplicate_header_members(city: City, verifier: Verifier, raw_member: str) -> None:
    head = _with_member(forge.header(city.key.kid), raw_member)
    token = city_signed(city, head, forge.pass_claims())
    assert_forged(verifier.check(token, now=NOW), "invalid", "duplicate_member")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c, far: _with_member(c, f'"exp":{far}'),
        lambda c, far: _with_member(c, '"iss":"https://evil.example"'),
        lambda c, far: _with_member(c, f'"\\u0065xp":{far}'),
        lambda c, far: _with_member(c, '"pt":"parking"'),
        lambda c, far: json.dumps(c).replace('"idx": 4711', '"idx": 4711, "idx": 5'),
        lambda c, far: json.dumps(c).replace('"h": {', '"h": {"name": "Mallory", '),
    ],
    ids=["exp", "iss", "escaped_exp", "pt", "nested_idx", "nested_holder"],
)
def test_rejects_duplicate_payload_members(city: City, verifier: Verifier, mutate: Any) -> None:
    claims = forge.pass_claims()
    far = forge.unix(NOW + timedelta(days=3650))
    payload = mutate(claims, far)
    assert payload != json.dumps(claims)
    token = city_signed(city, forge.header(city.key.kid), payload)
    assert_forged(verifier.check(token, now=NOW), "invalid", "duplicate_member")


# -- 12. oversized input --------------------------------------------------------


@pytest.mark.parametrize("filler", ["A", "WP1" + "7" * 9, "a.b."])
def test_rejects_ten_megabyte_token_fast(verifier: Verifier, filler: str) -> None:
    text = (filler * (10_000_000 // len(filler) + 1))[:10_000_000]
    started = time.perf_counter()
    result = verifier.check(text, now=NOW)
    elapsed = time.perf_counter() - started
    assert_forged(result, "invalid", "too_long")
    assert elapsed < 1.0


def test_rejects_token_longer_than_the_pass_cap(city: City, verifier: Verifier) -> None:
    """Longer than a pass may be, yet within the QR input cap: refused before parsing."""
    claims = forge.pass_claims()
    claims["h"]["name"] = "E" * MAX_PASS_TOKEN_LENGTH
    token = city_signed(city, forge.header(city.key.kid), claims)
    assert MAX_PASS_TOKEN_LENGTH < len(token) < 4 * MAX_PASS_TOKEN_LENGTH
    assert_forged(verifier.check(token, now=NOW), "invalid", "too_long")


def test_rejects_qr_text_deflate_bomb(city: City, verifier: Verifier) -> None:
    """A few kilobytes of DEFLATE that would inflate to megabytes: refused, cheaply."""
    compressor = zlib.compressobj(level=9, wbits=-15)
    compressed = compressor.compress(b"\x20" + b"{" * 2_000_000) + compressor.flush()
    blob = bytes([len(compressed) & 0x7F | 0x80, len(compressed) >> 7]) + compressed
    blob += b"\x00" * 64
    assert len(compressed) >> 7 < 0x80
    digits = "".join(
        str(int.from_bytes(blob[i : i + 7], "big")).zfill(17) for i in range(0, len(blob) - 6, 7)
    )
    text = "WP1" + digits  # whole 7-byte chunks only; the tail bytes are simply dropped
    assert len(text) < 4 * MAX_PASS_TOKEN_LENGTH
    started = time.perf_counter()
    result = verifier.check(text, now=NOW)
    assert time.perf_counter() - started < 1.0
    assert_forged(result, "invalid", "malformed")


# -- 13. exp ------------------------------------------------------------------


def _year(year: int) -> int:
    return forge.unix(NOW.replace(year=year))


_IAT = forge.unix(NOW - timedelta(days=1))


@pytest.mark.parametrize(
    "exp",
    [
        "missing",
        str(_IAT + 86400 * 30),
        1.5e9 + 3e8,
        float(_IAT + 86400 * 30),
        True,
        None,
        [_IAT + 86400 * 30],
        {"$date": _IAT + 86400 * 30},
        _year(3000),
        -1,
        0,
        2**63,
        _IAT,
        _IAT - 1,
        _IAT + int(MAX_VALIDITY.total_seconds()) + 1,
    ],
    ids=[
        "missing",
        "string",
        "float_exponent",
        "float_whole",
        "bool",
        "null",
        "list",
        "object",
        "year_3000",
        "negative",
        "zero",
        "int64_overflow",
        "equal_to_iat",
        "before_iat",
        "beyond_max_validity",
    ],
)
def test_rejects_bad_exp_claim(city: City, verifier: Verifier, exp: object) -> None:
    claims = forge.pass_claims()
    if exp == "missing":
        del claims["exp"]
    else:
        claims["exp"] = exp
    assert_forged(verifier.check(sign_claims(city, claims), now=NOW), "invalid", "bad_claim")


def test_accepts_exp_at_the_longest_validity(city: City, verifier: Verifier) -> None:
    """Control for the test above: iat + MAX_VALIDITY exactly is still sensible."""
    claims = forge.pass_claims()
    claims["exp"] = _IAT + int(MAX_VALIDITY.total_seconds())
    assert verdict(verifier.check(sign_claims(city, claims), now=NOW)) == ("valid", "ok")


@pytest.mark.parametrize("name", ["iat", "nbf"])
@pytest.mark.parametrize(
    "value",
    ["1800000000", 1.8e9, False, [1], -5, _year(3000)],
    ids=["string", "float", "bool", "list", "negative", "year_3000"],
)
def test_rejects_bad_iat_or_nbf_claim(
    city: City, verifier: Verifier, name: str, value: object
) -> None:
    claims = forge.pass_claims()
    claims[name] = value
    assert_forged(verifier.check(sign_claims(city, claims), now=NOW), "invalid", "bad_claim")


# -- 14. times in the future ----------------------------------------------------


def test_rejects_not_before_beyond_leeway(city: City, verifier: Verifier) -> None:
    token = city.issue("library", not_before=NOW + timedelta(minutes=2))
    result = verifier.check(token, now=NOW)
    assert verdict(result) == ("not_yet_valid", "not_yet_valid")
    assert result.claims["serial"] == "SERIAL0123456789"  # genuine: shown to staff


def test_rejects_issued_in_future_beyond_leeway(city: City, verifier: Verifier) -> None:
    token = city.issue("library", issued_at=NOW + timedelta(minutes=2))
    result = verifier.check(token, now=NOW)
    assert verdict(result) == ("invalid", "issued_in_future")
    assert result.claims["serial"] == "SERIAL0123456789"


def test_accepts_times_within_leeway(city: City, verifier: Verifier) -> None:
    soon = NOW + timedelta(seconds=30)
    for token in (city.issue("library", issued_at=soon), city.issue("library", not_before=soon)):
        assert verdict(verifier.check(token, now=NOW)) == ("valid", "ok")


def test_rejects_expired_pass_beyond_leeway(city: City, verifier: Verifier) -> None:
    issued_at = NOW - timedelta(days=30)
    expired = city.issue(issued_at=issued_at, expires_at=NOW - timedelta(minutes=2))
    result = verifier.check(expired, now=NOW)
    assert verdict(result) == ("expired", "expired")
    assert result.claims["serial"] == "SERIAL0123456789"
    barely = city.issue(issued_at=issued_at, expires_at=NOW - timedelta(seconds=30))
    assert verdict(verifier.check(barely, now=NOW)) == ("valid", "ok")


TICK = timedelta(microseconds=1)
A_MONTH = timedelta(days=30)
MINUTE = timedelta(seconds=60)  # the leeway


@pytest.mark.parametrize(
    ("times", "inside", "outside", "beyond"),
    [
        (
            {"issued_at": NOW - A_MONTH, "expires_at": NOW},
            NOW + MINUTE - TICK,
            NOW + MINUTE,
            ("expired", "expired"),
        ),
        ({"issued_at": NOW}, NOW - MINUTE, NOW - MINUTE - TICK, ("invalid", "issued_in_future")),
        (
            {"not_before": NOW},
            NOW - MINUTE,
            NOW - MINUTE - TICK,
            ("not_yet_valid", "not_yet_valid"),
        ),
    ],
    ids=["exp", "iat", "nbf"],
)
def test_time_checks_in_seconds_keep_the_leeway_edge_to_the_microsecond(
    city: City,
    verifier: Verifier,
    times: dict[str, datetime],
    inside: datetime,
    outside: datetime,
    beyond: tuple[str, str],
) -> None:
    """The checks compare the signed whole seconds with now.timestamp(): a clock one
    microsecond either side of the leeway's edge falls as comparing datetimes would."""
    token = city.issue(**times)
    assert verdict(verifier.check(token, now=inside)) == ("valid", "ok")
    assert verdict(verifier.check(token, now=outside)) == beyond


def test_a_naive_now_never_judges_a_pass_in_local_time(city: City, verifier: Verifier) -> None:
    """A clock without a time zone would be read as local time: refused, never valid."""
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ValueError, match="naive"):
        verify_pass_token(city.issue(), verifier._keys, issuer=ISSUER, now=naive)
    assert verdict(verifier.check(city.issue(), now=naive)) == ("invalid", "internal_error")


# -- 15. wrong issuer -----------------------------------------------------------


@pytest.mark.parametrize(
    "issuer",
    ["https://evil.example", ISSUER + "/", ISSUER.upper(), "http://pass.stadt-musterstadt.de", ""],
)
def test_rejects_wrong_issuer(city: City, verifier: Verifier, issuer: str) -> None:
    result = verifier.check(city.issue("library", issuer=issuer), now=NOW)
    assert verdict(result) == ("invalid", "wrong_issuer")
    assert result.claims["issuer"] == issuer


@pytest.mark.parametrize("issuer", [None, 1, ["https://pass.stadt-musterstadt.de"]])
def test_rejects_non_text_issuer(city: City, verifier: Verifier, issuer: object) -> None:
    claims = forge.pass_claims()
    claims["iss"] = issuer
    assert_forged(verifier.check(sign_claims(city, claims), now=NOW), "invalid", "bad_claim")


# -- 16. a key not allowed for the pass type -------------------------------------


def test_rejects_key_not_allowed_for_pass_type(city: City) -> None:
    library_key = city.add_key(pass_types=["library"])
    verifier = city.verifier()
    token = sign_jws(forge.pass_claims("parking"), library_key, typ="pass+jwt")
    result = verifier.check(token, now=NOW)
    assert verdict(result) == ("invalid", "key_not_allowed")
    library = sign_jws(forge.pass_claims("library"), library_key, typ="pass+jwt")
    assert verdict(verifier.check(library, now=NOW)) == ("valid", "ok")


def test_rejects_pass_type_no_key_may_sign(city: City, verifier: Verifier) -> None:
    claims = forge.pass_claims("library")
    claims["pt"] = "swimming"
    result = verifier.check(sign_claims(city, claims), now=NOW)
    assert verdict(result) == ("invalid", "key_not_allowed")


def test_rejects_unknown_pass_type(city: City) -> None:
    """A key may name a type the bundle does not describe: refuse rather than guess."""
    key = city.add_key(pass_types=["library", "swimming"])
    claims = forge.pass_claims("library")
    claims["pt"] = "swimming"
    result = city.verifier().check(sign_jws(claims, key, typ="pass+jwt"), now=NOW)
    assert verdict(result) == ("invalid", "unknown_pass_type")


# -- 17. a revoked key ------------------------------------------------------------


@pytest.mark.parametrize("type_id", ["library", "parking"])
def test_rejects_pass_signed_by_revoked_key(city: City, type_id: str) -> None:
    good_lists = city.status_tokens()  # signed before the revocation
    token = city.issue(type_id)
    assert verdict(city.verifier(status_tokens=good_lists).check(token, now=NOW)) == (
        "valid",
        "ok",
    )
    city.set_key_info(city.key, state=KeyState.REVOKED)
    result = city.verifier(status_tokens=good_lists).check(token, now=NOW)
    assert verdict(result) == ("invalid", "key_revoked")


def test_rejects_status_list_signed_by_revoked_key(city: City) -> None:
    other = city.add_key()
    lists = city.status_tokens()  # signed by the main key, about to be revoked
    token = city.issue("library", key=other)
    city.set_key_info(city.key, state=KeyState.REVOKED)
    result = city.verifier(status_tokens=lists).check(token, now=NOW)
    assert verdict(result) == ("invalid", "status_list_invalid")


# -- 18. the key's signing window ---------------------------------------------------


def test_rejects_iat_before_key_not_before(city: City) -> None:
    key = city.add_key(now=NOW - timedelta(days=10))
    claims = forge.pass_claims(issued_at=NOW - timedelta(days=20))
    result = city.verifier().check(sign_jws(claims, key, typ="pass+jwt"), now=NOW)
    assert verdict(result) == ("invalid", "key_window")


def test_rejects_iat_after_retired_key_not_after(city: City) -> None:
    key = city.add_key(now=NOW - timedelta(days=100), not_after=NOW - timedelta(days=50))
    claims = forge.pass_claims(issued_at=NOW - timedelta(days=40))
    token = sign_jws(claims, key, typ="pass+jwt")  # signed while the key was still active
    city.set_key_info(key, state=KeyState.RETIRED)
    result = city.verifier().check(token, now=NOW)
    assert verdict(result) == ("invalid", "key_window")


def test_retired_key_still_verifies_passes_from_its_window(city: City) -> None:
    key = city.add_key(now=NOW - timedelta(days=100), not_after=NOW - timedelta(days=50))
    token = city.issue("library", key=key, issued_at=NOW - timedelta(days=60))
    city.set_key_info(key, state=KeyState.RETIRED)
    verifier = city.verifier()
    assert verifier.bundle.keys[-1].info.state is KeyState.RETIRED
    assert verdict(verifier.check(token, now=NOW)) == ("valid", "ok")


# -- 19. status index out of range ------------------------------------------------


@pytest.mark.parametrize("type_id", ["library", "parking"])
@pytest.mark.parametrize("idx", [MIN_LIST_SIZE, MIN_LIST_SIZE + 7, 2**40, 2**80])
def test_rejects_status_index_out_of_range(
    city: City, verifier: Verifier, type_id: str, idx: int
) -> None:
    result = verifier.check(city.issue(type_id, idx=idx), now=NOW)
    assert verdict(result) == ("invalid", "status_index_out_of_range")
    last = verifier.check(city.issue(type_id, idx=MIN_LIST_SIZE - 1), now=NOW)
    assert verdict(last) == ("valid", "ok")


@pytest.mark.parametrize(
    "status",
    [
        {"status_list": {"idx": -1, "uri": status_uri("library")}},
        {"status_list": {"idx": True, "uri": status_uri("library")}},
        {"status_list": {"idx": 1.0, "uri": status_uri("library")}},
        {"status_list": {"idx": "1", "uri": status_uri("library")}},
        {"status_list": {"idx": 1}},
        {"status_list": {"idx": 1, "uri": status_uri("library"), "x": 1}},
        {"status_list": [1, status_uri("library")]},
        None,
    ],
    ids=["negative", "bool", "float", "string", "no_uri", "extra", "list", "null"],
)
def test_rejects_malformed_status_reference(city: City, verifier: Verifier, status: object) -> None:
    claims = forge.pass_claims()
    claims["status"] = status
    assert_forged(verifier.check(sign_claims(city, claims), now=NOW), "invalid", "bad_claim")


# -- 20. a status list that is not genuine, or not this pass's ---------------------


@pytest.mark.parametrize("part", ["signature", "payload"])
def test_rejects_status_list_with_bad_signature(city: City, part: str) -> None:
    tokens = city.status_tokens()
    uri = status_uri("library")
    head, body, signature = tokens[uri].split(".")
    if part == "signature":
        signature = forge.replace_char(signature, len(signature) // 2)
    else:
        body = forge.replace_char(body, len(body) // 2)
    tokens[uri] = ".".join((head, body, signature))
    verifier = city.verifier(status_tokens=tokens)
    assert verdict(verifier.check(city.issue("library"), now=NOW)) == (
        "invalid",
        "status_list_invalid",
    )
    # The other list is untouched and keeps working.
    assert verdict(verifier.check(city.issue("parking"), now=NOW)) == ("valid", "ok")


def test_rejects_status_list_signed_by_attacker(city: City) -> None:
    tokens = city.status_tokens()
    uri = status_uri("parking")
    _, payload, _ = forge.segments(tokens[uri])
    attacker = ec.generate_private_key(ec.SECP256R1())
    tokens[uri] = forge.jws(
        forge.header(city.key.kid, typ="statuslist+jwt"), payload, sign=forge.ecdsa_signer(attacker)
    )
    result = city.verifier(status_tokens=tokens).check(city.issue("parking"), now=NOW)
    assert verdict(result) == ("invalid", "status_list_invalid")


def test_rejects_pass_token_placed_as_status_list(city: City) -> None:
    tokens = city.status_tokens()
    tokens[status_uri("library")] = city.issue("library")  # genuine, but typ pass+jwt
    result = city.verifier(status_tokens=tokens).check(city.issue("library"), now=NOW)
    assert verdict(result) == ("invalid", "status_list_invalid")


def test_rejects_status_list_for_another_uri(city: City) -> None:
    """Un-revoking a pass by swapping in another genuine list (all valid) fails."""
    city.lists[status_uri("library")].set(4711, INVALID)
    tokens = city.status_tokens()
    token = city.issue("library")
    assert verdict(city.verifier(status_tokens=tokens).check(token, now=NOW)) == (
        "revoked",
        "revoked",
    )
    tokens[status_uri("library")] = tokens[status_uri("parking")]
    result = city.verifier(status_tokens=tokens).check(token, now=NOW)
    assert verdict(result) == ("invalid", "status_list_subject")


# -- 21. status verdicts and the stale policy --------------------------------------


def test_rejects_revoked_pass(city: City) -> None:
    city.lists[status_uri("library")].set(4711, INVALID)
    result = city.verifier().check(city.issue("library"), now=NOW)
    assert verdict(result) == ("revoked", "revoked")
    assert result.claims["serial"] == "SERIAL0123456789"


def test_rejects_suspended_pass(city: City) -> None:
    city.lists[status_uri("parking")].set(4711, SUSPENDED)
    result = city.verifier().check(city.issue("parking"), now=NOW)
    assert verdict(result) == ("suspended", "suspended")


def test_rejects_parking_pass_with_stale_status(city: City, verifier: Verifier) -> None:
    later = NOW + timedelta(days=3)  # the status list tokens live two days
    result = verifier.check(city.issue("parking"), now=later)
    assert verdict(result) == ("stale_status", "status_stale_closed")
    assert not result.admit


def test_stale_status_is_amber_even_when_the_library_admits_it(
    city: City, verifier: Verifier
) -> None:
    result = verifier.check(city.issue("library"), now=NOW + timedelta(days=3))
    assert verdict(result) == ("stale_status", "status_stale")
    assert result.admit and not result.valid


@pytest.mark.parametrize("type_id", ["library", "parking"])
def test_revoked_pass_stays_revoked_with_stale_status(city: City, type_id: str) -> None:
    city.lists[status_uri(type_id)].set(4711, INVALID)
    result = city.verifier().check(city.issue(type_id), now=NOW + timedelta(days=3))
    assert verdict(result) == ("revoked", "revoked")


def test_stripping_status_lists_from_a_bundle_never_yields_valid(city: City) -> None:
    """An attacker who can only withhold the status list (the pass is revoked) gets amber."""
    city.lists[status_uri("library")].set(4711, INVALID)
    city.lists[status_uri("parking")].set(4711, INVALID)
    verifier = city.verifier(status_tokens={})
    parking = verifier.check(city.issue("parking"), now=NOW)
    assert verdict(parking) == ("status_unchecked", "status_list_unknown_closed")
    assert not parking.admit
    library = verifier.check(city.issue("library"), now=NOW)
    assert verdict(library) == ("status_unchecked", "status_list_unknown")
    assert library.admit and not library.valid
