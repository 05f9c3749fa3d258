"""Apple Wallet .pkpass: contents, signature (checked by OpenSSL too), safety of reading."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import warnings
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.factories import HOLDERS, NOW, PASS_TYPES, City
from tests.formats.conftest import DESIGNS, PASS_TYPE_ID, TEAM_ID
from tests.openssl import OPENSSL, openssl_verify
from wallet.domain import PassState, WalletPass
from wallet.errors import ConfigError, InputError, WalletError
from wallet.formats.apple_dev_ca import DevChain, create_dev_chain
from wallet.formats.pkpass import (
    AppleDesign,
    AppleSigner,
    build_pkpass,
    load_apple_design,
    load_apple_signer,
    parse_strings,
    read_pkpass,
)
from wallet.qrtext import encode_qr_text

WEB_SERVICE = "https://pass.stadt-musterstadt.de/apple"
AUTH_TOKEN = "k3Vt9sQx2LmN8pRw4ZyA7bCd"


def make_pass(
    issuer: City,
    type_id: str = "library",
    *,
    state: PassState = "valid",
    reason: str | None = None,
    authentication_token: str = AUTH_TOKEN,
) -> WalletPass:
    token = issuer.issue(type_id)
    return WalletPass.from_holder(
        PASS_TYPES[type_id],
        HOLDERS[type_id],
        serial="SERIAL0123456789",
        valid_from=NOW - timedelta(days=1),
        valid_until=PASS_TYPES[type_id].valid_until(NOW - timedelta(days=1)),
        state=state,
        reason=reason,
        token=token,
        qr_text=encode_qr_text(token),
        updated_at=NOW - timedelta(hours=2),
        authentication_token=authentication_token,
    )


def build(
    wallet_pass: WalletPass,
    designs: dict[str, AppleDesign],
    signer: AppleSigner,
    **kwargs: Any,
) -> bytes:
    kwargs.setdefault("web_service_url", WEB_SERVICE)
    kwargs.setdefault("now", NOW)
    return build_pkpass(
        wallet_pass, design=designs[wallet_pass.pass_type.id], signer=signer, **kwargs
    )


def pass_json(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(read_pkpass(data)["pass.json"])
    return document


def strings_of(data: bytes, lang: str) -> dict[str, str]:
    return parse_strings(read_pkpass(data)[f"{lang}.lproj/pass.strings"], source=lang)


def all_fields(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [field for area in document["generic"].values() for field in area]


def field_by_key(document: dict[str, Any], key: str) -> dict[str, Any]:
    return next(f for f in all_fields(document) if f["key"] == key)


# -- contents ----------------------------------------------------------------


@pytest.mark.parametrize("type_id", sorted(PASS_TYPES))
def test_manifest_lists_every_other_file_with_its_sha1(
    type_id: str, issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    files = read_pkpass(build(make_pass(issuer, type_id), designs, signer))
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    assert {"pass.json", "icon.png", "de.lproj/pass.strings", "en.lproj/pass.strings"} <= set(
        manifest
    )
    for name, digest in manifest.items():
        assert digest == hashlib.sha1(files[name]).hexdigest(), name


def test_pass_json_carries_identity_validity_and_web_service(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    wallet_pass = make_pass(issuer, "parking")
    document = pass_json(build(wallet_pass, designs, signer))
    assert document["formatVersion"] == 1
    assert document["passTypeIdentifier"] == PASS_TYPE_ID
    assert document["teamIdentifier"] == TEAM_ID
    assert document["serialNumber"] == wallet_pass.serial
    assert document["authenticationToken"] == AUTH_TOKEN
    assert document["webServiceURL"] == WEB_SERVICE
    assert document["sharingProhibited"] is True
    assert "voided" not in document
    expiration = datetime.fromisoformat(document["expirationDate"])
    assert expiration.utcoffset() is not None and expiration == wallet_pass.valid_until
    assert document["backgroundColor"] == designs["parking"].colours["backgroundColor"]
    assert field_by_key(document, "plate")["value"] == "D-AB 1234"
    assert field_by_key(document, "zone")["value"] == "12"
    until = field_by_key(document, "valid_until")
    assert datetime.fromisoformat(until["value"]) == wallet_pass.valid_until


def test_barcode_is_the_token_and_verifies_as_the_same_string(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    wallet_pass = make_pass(issuer, "library")
    barcodes = pass_json(build(wallet_pass, designs, signer))["barcodes"]
    assert barcodes == [
        {
            "format": "PKBarcodeFormatQR",
            "message": wallet_pass.token,
            "messageEncoding": "iso-8859-1",
            "altText": wallet_pass.alt_text,
        }
    ]
    message = barcodes[0]["message"]
    assert isinstance(message, str)
    # What a scanner reads back from the QR code is the message's ISO-8859-1 bytes.
    scanned = message.encode("iso-8859-1").decode("iso-8859-1")
    result = issuer.verifier().check(scanned, now=NOW)
    assert result.state == "valid"
    assert result.state == issuer.verifier().check(wallet_pass.token, now=NOW).state


def test_labels_come_from_pass_toml_in_both_languages(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer, "library"), designs, signer)
    document = pass_json(data)
    german, english = strings_of(data, "de"), strings_of(data, "en")
    name_field = field_by_key(document, "card_number")
    label = PASS_TYPES["library"].fields[0].label
    assert german[name_field["label"]] == label.de == "Ausweisnummer"
    assert english[name_field["label"]] == label.en == "Card number"
    assert german[document["description"]] == PASS_TYPES["library"].label.de
    assert english[document["organizationName"]] == PASS_TYPES["library"].issuer_name.en


@pytest.mark.parametrize("type_id", sorted(PASS_TYPES))
def test_every_localisable_text_is_defined_in_both_languages(
    type_id: str, issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer, type_id, state="suspended", reason="Umzug"), designs, signer)
    document = pass_json(data)
    holder_values = set(HOLDERS[type_id].values())
    keys = {document["description"], document["organizationName"], document["logoText"]}
    for field in all_fields(document):
        keys.add(field["label"])
        keys.update(field[k] for k in ("changeMessage",) if k in field)
        if "dateStyle" not in field and field["value"] not in holder_values:
            keys.add(field["value"])
    keys.discard("SERIAL0123456789")
    for lang in ("de", "en"):
        strings = strings_of(data, lang)
        assert keys <= set(strings), (lang, sorted(keys - set(strings)))


def test_pass_strings_are_utf16_with_byte_order_mark(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    files = read_pkpass(build(make_pass(issuer, "parking"), designs, signer))
    raw = files["de.lproj/pass.strings"]
    assert raw.startswith(b"\xff\xfe")
    text = raw[2:].decode("utf-16-le")
    assert '"field.plate" = "Kennzeichen";' in text
    assert "Straßenverkehrsamt" in text


def test_state_change_message_names_the_new_state(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer, "parking", state="suspended"), designs, signer)
    document = pass_json(data)
    state = field_by_key(document, "state")
    assert state["value"] == "state.suspended"
    for lang, word in (("de", "Ausgesetzt"), ("en", "Suspended")):
        strings = strings_of(data, lang)
        assert strings[state["changeMessage"]].count("%@") == 1
        assert strings[state["value"]].startswith(word)
    assert "voided" not in document


def test_staff_reason_never_goes_on_the_pass(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    reason = "Halterwechsel laut KBA-Meldung 4711"
    data = build(make_pass(issuer, "parking", state="suspended", reason=reason), designs, signer)
    for name, content in read_pkpass(data).items():
        text = content.decode("utf-16" if name.endswith(".strings") else "latin-1")
        assert "KBA" not in text, name


def test_revoked_pass_is_voided(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer, state="revoked", reason="verloren"), designs, signer)
    document = pass_json(data)
    assert document["voided"] is True
    state_value = field_by_key(document, "state")["value"]
    assert strings_of(data, "en")[state_value].startswith("Revoked")


def test_valid_pass_shows_the_designs_state_text(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer), designs, signer)
    assert field_by_key(pass_json(data), "state")["value"] == "state.valid"
    assert strings_of(data, "de")["state.valid"] == "Gültig"


def test_organization_name_can_be_configured(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    document = pass_json(
        build(make_pass(issuer), designs, signer, organization_name="Stadt Musterstadt")
    )
    assert document["organizationName"] == "Stadt Musterstadt"


def test_same_inputs_build_the_same_files(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    wallet_pass = make_pass(issuer, "library")
    first = build(wallet_pass, designs, signer)
    second = build(wallet_pass, designs, signer, now=NOW + timedelta(minutes=5))

    def layout(data: bytes) -> list[tuple[Any, ...]]:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [
                (i.filename, i.date_time, i.compress_type, i.external_attr, i.CRC)
                for i in archive.infolist()
                if i.filename != "signature"
            ]

    assert layout(first) == layout(second)
    stamp = (NOW - timedelta(hours=2)).astimezone(UTC)
    assert layout(first)[0][1] == (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, 0)
    files_one, files_two = read_pkpass(first), read_pkpass(second)
    assert list(files_one) == list(files_two)
    assert {n: d for n, d in files_one.items() if n != "signature"} == {
        n: d for n, d in files_two.items() if n != "signature"
    }
    # Signatures differ at most in the signing time the library takes from the clock.
    digests = [signed_attributes(f["signature"])["message_digest"] for f in (files_one, files_two)]
    assert digests[0] == digests[1] == hashlib.sha256(files_one["manifest.json"]).digest()


def test_a_different_pass_builds_a_different_pass_json(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    one = make_pass(issuer, "library")
    other = replace(one, serial="SERIAL9876543210")
    assert (
        read_pkpass(build(one, designs, signer))["pass.json"]
        != read_pkpass(build(other, designs, signer))["pass.json"]
    )


# -- signature ---------------------------------------------------------------


def signed_attributes(signature: bytes) -> dict[str, Any]:
    signer_info = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]
    return {a["type"].native: a["values"][0].native for a in signer_info["signed_attrs"]}


@pytest.mark.skipif(not OPENSSL.exists(), reason="needs /usr/bin/openssl")
def test_openssl_accepts_the_signature_and_rejects_a_tampered_manifest(
    tmp_path: Path,
    issuer: City,
    designs: dict[str, AppleDesign],
    signer: AppleSigner,
    chain: DevChain,
) -> None:
    files = read_pkpass(build(make_pass(issuer), designs, signer))
    accepted = openssl_verify(
        tmp_path, files["signature"], files["manifest.json"], chain.root, at=NOW
    )
    assert accepted.returncode == 0, accepted.stderr
    assert (tmp_path / "verified").read_bytes() == files["manifest.json"]

    manifest = json.loads(files["manifest.json"])
    manifest["pass.json"] = hashlib.sha1(b"a different pass").hexdigest()
    tampered = json.dumps(manifest, sort_keys=True, indent=2).encode()
    refused = openssl_verify(tmp_path, files["signature"], tampered, chain.root, at=NOW)
    assert refused.returncode != 0
    assert "verification failure" in refused.stderr.lower()


@pytest.mark.skipif(not OPENSSL.exists(), reason="needs /usr/bin/openssl")
def test_openssl_rejects_a_signature_from_another_chain(
    tmp_path: Path, issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    other = create_dev_chain(
        tmp_path / "other", team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW
    )
    files = read_pkpass(build(make_pass(issuer), designs, signer))
    refused = openssl_verify(
        tmp_path, files["signature"], files["manifest.json"], other.root, at=NOW
    )
    assert refused.returncode != 0


def test_signature_embeds_the_wwdr_certificate_and_a_signing_time(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    files = read_pkpass(build(make_pass(issuer), designs, signer))
    signed_data = cms.ContentInfo.load(files["signature"])["content"]
    embedded = {c.chosen.dump() for c in signed_data["certificates"]}
    der = serialization.Encoding.DER
    assert signer.wwdr.public_bytes(der) in embedded
    assert signer.certificate.public_bytes(der) in embedded
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    signer_info = signed_data["signer_infos"][0]
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha256"
    attributes = signed_attributes(files["signature"])
    assert attributes["message_digest"] == hashlib.sha256(files["manifest.json"]).digest()
    signing_time = attributes["signing_time"]
    assert isinstance(signing_time, datetime)
    # Set by the signing library from the system clock, not from ``now``.
    assert abs(signing_time - datetime.now(UTC)) < timedelta(hours=1)


# -- refusals ----------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "short", "x" * 15, "sixteen chars ok"])
def test_short_or_unsendable_authentication_token_is_refused(
    token: str, issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    with pytest.raises(InputError) as caught:
        build(make_pass(issuer, authentication_token=token), designs, signer)
    assert caught.value.field == "authentication_token"


def test_sixteen_character_authentication_token_is_accepted(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer, authentication_token="0123456789abcdef"), designs, signer)
    assert pass_json(data)["authenticationToken"] == "0123456789abcdef"


@pytest.mark.parametrize(
    "url",
    [
        "http://pass.stadt-musterstadt.de/apple",
        "ftp://pass.stadt-musterstadt.de/apple",
        "https://user:secret@pass.stadt-musterstadt.de/apple",
        "https://pass.stadt-musterstadt.de/apple?x=1",
        "pass.stadt-musterstadt.de/apple",
    ],
)
def test_web_service_url_must_be_https(
    url: str, issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    with pytest.raises(ConfigError):
        build(make_pass(issuer), designs, signer, web_service_url=url)


def test_http_web_service_url_is_accepted_on_loopback_only(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer), designs, signer, web_service_url="http://127.0.0.1:8000/apple/")
    assert pass_json(data)["webServiceURL"] == "http://127.0.0.1:8000/apple"


@pytest.mark.parametrize("moment", [NOW + timedelta(days=400), NOW - timedelta(days=2)])
def test_signer_outside_its_validity_is_refused(
    moment: datetime, issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    with pytest.raises(ConfigError, match="Pass Type ID certificate"):
        build(make_pass(issuer), designs, signer, now=moment)


# -- loading the signer ------------------------------------------------------


def test_signer_exposes_pass_type_and_team_from_the_certificate(signer: AppleSigner) -> None:
    assert signer.pass_type_id == PASS_TYPE_ID
    assert signer.team_id == TEAM_ID


def test_signer_loads_der_certificates(tmp_path: Path, chain: DevChain) -> None:
    der = tmp_path / "pass.cer"
    der.write_bytes(
        x509.load_pem_x509_certificate(chain.certificate.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    )
    loaded = load_apple_signer(certificate=der, key=chain.key, wwdr=chain.wwdr, passphrase=None)
    assert loaded.pass_type_id == PASS_TYPE_ID


def test_encrypted_key_needs_the_right_passphrase(tmp_path: Path) -> None:
    passphrase = b"correct horse battery staple"
    chain = create_dev_chain(
        tmp_path, team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW, passphrase=passphrase
    )
    paths = {"certificate": chain.certificate, "key": chain.key, "wwdr": chain.wwdr}
    assert load_apple_signer(**paths, passphrase=passphrase).team_id == TEAM_ID
    with pytest.raises(ConfigError, match="passphrase is wrong") as wrong:
        load_apple_signer(**paths, passphrase=b"wrong horse battery staple")
    assert str(chain.key) in wrong.value.message
    assert "horse" not in wrong.value.message
    with pytest.raises(ConfigError, match="is encrypted: configure its passphrase"):
        load_apple_signer(**paths, passphrase=None)


def test_unencrypted_key_with_a_passphrase_is_refused(chain: DevChain) -> None:
    with pytest.raises(ConfigError, match="not encrypted") as caught:
        load_apple_signer(
            certificate=chain.certificate, key=chain.key, wwdr=chain.wwdr, passphrase=b"s3cret!!"
        )
    assert "s3cret" not in caught.value.message


def test_key_of_another_certificate_is_refused(tmp_path: Path, chain: DevChain) -> None:
    other = create_dev_chain(tmp_path, team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW)
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        load_apple_signer(
            certificate=chain.certificate, key=other.key, wwdr=chain.wwdr, passphrase=None
        )


@pytest.mark.parametrize("what", ["certificate", "wwdr"])
def test_a_key_file_is_not_a_certificate(what: str, chain: DevChain) -> None:
    paths = {"certificate": chain.certificate, "key": chain.key, "wwdr": chain.wwdr}
    paths[what] = chain.key
    with pytest.raises(ConfigError, match="contains no certificate") as caught:
        load_apple_signer(**paths, passphrase=None)
    assert str(chain.key) in caught.value.message


def test_a_certificate_is_not_a_key(chain: DevChain) -> None:
    with pytest.raises(ConfigError, match="is not a private key"):
        load_apple_signer(
            certificate=chain.certificate, key=chain.wwdr, wwdr=chain.wwdr, passphrase=None
        )


def test_missing_file_is_named(tmp_path: Path, chain: DevChain) -> None:
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_apple_signer(
            certificate=tmp_path / "nope.pem", key=chain.key, wwdr=chain.wwdr, passphrase=None
        )
    assert "nope.pem" in caught.value.message


def test_pass_certificate_given_as_wwdr_is_refused(chain: DevChain) -> None:
    with pytest.raises(ConfigError, match="WWDR"):
        load_apple_signer(
            certificate=chain.certificate, key=chain.key, wwdr=chain.certificate, passphrase=None
        )


def test_certificate_without_uid_is_not_a_pass_certificate(tmp_path: Path, chain: DevChain) -> None:
    # The WWDR-like CA has no UID: with its own key it loads up to the subject check.
    from wallet.formats.apple_dev_ca import issue_dev_chain, write_private_key

    issued = issue_dev_chain(team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW)
    (tmp_path / "ca.pem").write_bytes(issued.wwdr.public_bytes(serialization.Encoding.PEM))
    write_private_key(tmp_path / "ca.key.pem", issued.wwdr_key, passphrase=None)
    with pytest.raises(ConfigError, match="no UID"):
        load_apple_signer(
            certificate=tmp_path / "ca.pem",
            key=tmp_path / "ca.key.pem",
            wwdr=chain.root,
            passphrase=None,
        )


# -- designs -----------------------------------------------------------------


def copy_design(tmp_path: Path, type_id: str = "library") -> Path:
    folder = tmp_path / type_id
    shutil.copytree(DESIGNS / type_id / "apple", folder)
    return folder


def test_design_precomputes_static_files(designs: dict[str, AppleDesign]) -> None:
    design = designs["library"]
    icon = design.file("icon.png")
    assert icon is not None
    assert icon.data == (DESIGNS / "library" / "apple" / "icon.png").read_bytes()
    assert icon.sha1 == hashlib.sha1(icon.data).hexdigest()
    assert design.strings_prefix["de"].startswith(b"\xff\xfe")


def test_design_without_icon_is_refused(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    (folder / "icon.png").unlink()
    with pytest.raises(ConfigError, match=r"no icon\.png"):
        load_apple_design(folder)


def test_design_with_a_stray_file_is_refused(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    (folder / "notes.txt").write_text("draft")
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        load_apple_design(folder)


def test_design_missing_a_string_in_one_language_is_refused(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    strings = folder / "en.lproj" / "pass.strings"
    kept = [line for line in strings.read_text().splitlines() if "state.revoked" not in line]
    strings.write_text("\n".join(kept) + "\n")
    with pytest.raises(ConfigError, match=r"en.lproj/pass.strings lacks state.revoked"):
        load_apple_design(folder)


def test_change_message_without_placeholder_is_refused(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    strings = folder / "de.lproj" / "pass.strings"
    strings.write_text(strings.read_text().replace(": %@", ""))
    with pytest.raises(ConfigError, match="%@"):
        load_apple_design(folder)


def test_design_must_show_the_state(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    template = json.loads((folder / "pass.json").read_text())
    template["generic"]["headerFields"] = []
    (folder / "pass.json").write_text(json.dumps(template))
    with pytest.raises(ConfigError, match=r"\$state"):
        load_apple_design(folder)


def test_design_may_not_define_per_pass_strings(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    for lang in ("de", "en"):
        with (folder / f"{lang}.lproj" / "pass.strings").open("a") as handle:
            handle.write('"field.name" = "Nom";\n')
    with pytest.raises(ConfigError, match=r"field\.name"):
        load_apple_design(folder)


def test_design_naming_a_field_the_pass_type_lacks_fails_the_build(
    tmp_path: Path, issuer: City, signer: AppleSigner
) -> None:
    folder = copy_design(tmp_path, "library")
    design = load_apple_design(folder)
    with pytest.raises(ConfigError, match="shows the field name, which pass type parking"):
        build_pkpass(
            make_pass(issuer, "parking"),
            design=design,
            signer=signer,
            web_service_url=WEB_SERVICE,
            now=NOW,
        )


def test_strings_parser_reads_comments_escapes_and_utf16() -> None:
    source = '/* c */\n"a" = "x \\"y\\" \\U00e9\\n";\n// line\n"b"="2";'
    expected = {"a": 'x "y" é\n', "b": "2"}
    assert parse_strings(source.encode(), source="t") == expected
    assert parse_strings(b"\xff\xfe" + source.encode("utf-16-le"), source="t") == expected
    with pytest.raises(ConfigError, match="twice"):
        parse_strings(b'"a" = "1";\n"a" = "2";', source="t")
    with pytest.raises(ConfigError):
        parse_strings(b'"a" = "1"', source="t")
    with pytest.raises(ConfigError, match="surrogate"):
        parse_strings(b'"a" = "\\UD800";', source="t")


def test_a_reason_that_is_not_valid_unicode_still_builds(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    wallet_pass = make_pass(issuer, state="revoked", reason="kaputt \ud800")
    data = build(wallet_pass, designs, signer)
    value = field_by_key(pass_json(data), "state")["value"]
    assert strings_of(data, "de")[value] == "Widerrufen"


# -- reading a pkpass safely -------------------------------------------------


def zip_of(entries: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with (
        warnings.catch_warnings(),
        zipfile.ZipFile(buffer, "w", compression=compression) as archive,
    ):
        warnings.simplefilter("ignore")  # zipfile warns about the duplicates we write on purpose
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def test_read_pkpass_returns_every_file(
    issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner
) -> None:
    data = build(make_pass(issuer), designs, signer)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        expected = {name: archive.read(name) for name in archive.namelist()}
    assert read_pkpass(data) == expected


@pytest.mark.parametrize(
    "name", ["../pass.json", "/etc/passwd", "a/../../b", "en.lproj/../../x", "a\\b", "x/y/z"]
)
def test_read_pkpass_refuses_path_traversal(name: str) -> None:
    with pytest.raises(WalletError) as caught:
        read_pkpass(zip_of([("pass.json", b"{}"), (name, b"x")]))
    assert caught.value.code == "pkpass_unreadable"


@pytest.mark.parametrize("second", ["pass.json", "PASS.json"])
def test_read_pkpass_refuses_duplicate_names(second: str) -> None:
    data = zip_of([("pass.json", b"{}"), (second, b"{}")])
    with pytest.raises(WalletError, match="twice"):
        read_pkpass(data)


def test_read_pkpass_refuses_a_zip_bomb() -> None:
    bomb = zip_of([("pass.json", b"\0" * (9 * 1024 * 1024))], compression=zipfile.ZIP_DEFLATED)
    assert len(bomb) < 100 * 1024
    with pytest.raises(WalletError, match="larger than allowed"):
        read_pkpass(bomb)


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_read_pkpass_refuses_what_is_not_a_zip(data: bytes) -> None:
    with pytest.raises(WalletError) as caught:
        read_pkpass(data)
    assert caught.value.code == "pkpass_unreadable"
