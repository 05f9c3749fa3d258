"""Google Wallet generic passes: object shape, languages, states, save links, key files."""

# Fixtures imported from the stand-in reappear as test parameters, which is what F811 flags.
# ruff: noqa: F811

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.factories import NOW, PASS_TYPES, City
from tests.standins.google_wallet import (  # noqa: F401 - fixtures
    ISSUER_ID,
    PRIVATE_KEY_ID,
    SERVICE_ACCOUNT_EMAIL,
    other_rsa_key,
    pem,
    service_account_file,
    service_account_key,
    wallet_pass,
    write_service_account_file,
)
from wallet.config import PROJECT_ROOT
from wallet.domain import HolderField
from wallet.errors import ConfigError, InputError, PassTypeError
from wallet.formats.google import (
    MAX_SAVE_LINK_LENGTH,
    GoogleDesign,
    ServiceAccount,
    class_id,
    generic_class,
    generic_object,
    load_google_design,
    load_service_account,
    object_id,
    save_url,
    state_patch,
)
from wallet.passtypes import Text

PASSES = PROJECT_ROOT / "templates" / "passes"
PUBLIC = "https://pass.stadt-musterstadt.de"
ORIGINS = [PUBLIC]
GOOGLE_ID = re.compile(r"[0-9]+\.[A-Za-z0-9._-]+")


@pytest.fixture
def account(service_account_file: Path) -> ServiceAccount:
    return load_service_account(service_account_file)


def design(type_id: str = "library") -> GoogleDesign:
    return load_google_design(PASSES / type_id)


def obj(type_id: str = "library", **kwargs: Any) -> dict[str, Any]:
    return generic_object(
        wallet_pass(type_id, **kwargs),
        issuer_id=ISSUER_ID,
        design=design(type_id),
        public_base_url=PUBLIC,
    )


def cls(type_id: str = "library") -> dict[str, Any]:
    return generic_class(
        issuer_id=ISSUER_ID,
        pass_type=PASS_TYPES[type_id],
        design=design(type_id),
        public_base_url=PUBLIC,
    )


def decode_save_link(url: str, account: ServiceAccount) -> dict[str, Any]:
    """Verify the link's JWT with the PUBLIC key only, as Google does."""
    prefix = "https://pay.google.com/gp/v/save/"
    assert url.startswith(prefix)
    return jwt.decode(
        url.removeprefix(prefix),
        account.private_key.public_key(),
        algorithms=["RS256"],
        audience="google",
        issuer=SERVICE_ACCOUNT_EMAIL,
        # NOW is a fixed test time; tests check iat themselves.
        options={
            "require": ["iss", "aud", "iat", "typ", "origins", "payload"],
            "verify_iat": False,
        },
    )


def module(google_object: dict[str, Any], module_id: str) -> dict[str, Any]:
    found = [m for m in google_object["textModulesData"] if m["id"] == module_id]
    assert len(found) == 1, module_id
    return found[0]


# --- ids ---


def test_ids_follow_googles_format() -> None:
    assert class_id(ISSUER_ID, "library") == f"{ISSUER_ID}.library"
    assert object_id(ISSUER_ID, "aZ09-_xyAZ09-_xy") == f"{ISSUER_ID}.aZ09-_xyAZ09-_xy"
    for type_id in PASS_TYPES:
        assert GOOGLE_ID.fullmatch(class_id(ISSUER_ID, type_id))


@pytest.mark.parametrize("serial", ["a/b", "a?b", "", "ä" * 16, "a b"])
def test_object_id_refuses_characters_google_does_not_allow(serial: str) -> None:
    with pytest.raises(InputError) as caught:
        object_id(ISSUER_ID, serial)
    assert caught.value.field == "serial"


def test_issuer_id_must_be_googles_number() -> None:
    with pytest.raises(ConfigError, match="issuer id"):
        class_id("my-issuer", "library")


# --- the object ---


def test_object_carries_the_token_in_a_qr_code_that_verifies_offline() -> None:
    wp = wallet_pass("parking")
    google_object = generic_object(
        wp, issuer_id=ISSUER_ID, design=design("parking"), public_base_url=PUBLIC
    )
    assert google_object["barcode"] == {
        "type": "QR_CODE",
        "value": wp.token,
        "alternateText": wp.serial[:12],
    }
    assert google_object["id"] == f"{ISSUER_ID}.{wp.serial}"
    assert google_object["classId"] == f"{ISSUER_ID}.parking"


def test_token_in_the_qr_code_verifies_with_the_issuing_city() -> None:
    """What a staff device scans from the Google pass is the genuine, offline-checkable pass."""
    city = City()
    token = city.issue("library")
    wp = replace(wallet_pass("library"), token=token)
    google_object = generic_object(
        wp, issuer_id=ISSUER_ID, design=design("library"), public_base_url=PUBLIC
    )
    result = city.verifier().check(google_object["barcode"]["value"], now=NOW)
    assert result.state == "valid"


def test_strings_are_german_with_an_english_translation() -> None:
    google_object = obj("library")
    label = PASS_TYPES["library"].issuer_name
    assert google_object["cardTitle"] == {
        "defaultValue": {"language": "de", "value": label.de},
        "translatedValues": [{"language": "en", "value": label.en}],
    }
    card = module(google_object, "holder_card_number")
    assert card["body"] == "100200300400"
    assert card["localizedHeader"]["defaultValue"]["value"] == "Ausweisnummer"
    assert card["localizedHeader"]["translatedValues"] == [
        {"language": "en", "value": "Card number"}
    ]
    state = module(google_object, "state")
    assert state["localizedBody"]["defaultValue"]["value"] == "Gültig"
    assert state["localizedBody"]["translatedValues"][0]["value"] == "Valid"


def test_header_is_the_holders_name_or_the_designs_field() -> None:
    library = obj("library")
    assert library["header"]["defaultValue"]["value"] == "Erika Mustermann"
    assert library["subheader"]["translatedValues"][0]["value"] == "Name"
    parking = obj("parking")
    assert parking["header"]["defaultValue"]["value"] == "D-AB 1234"
    assert parking["subheader"]["defaultValue"]["value"] == "Kennzeichen"


def test_header_falls_back_to_the_first_field_without_a_design_choice() -> None:
    plain = replace(design("parking"), header_field=None)
    google_object = generic_object(
        wallet_pass("parking"), issuer_id=ISSUER_ID, design=plain, public_base_url=PUBLIC
    )
    assert google_object["header"]["defaultValue"]["value"] == "D-AB 1234"


def test_every_holder_field_has_a_text_module() -> None:
    wp = wallet_pass("parking")
    google_object = obj("parking")
    ids = [m["id"] for m in google_object["textModulesData"]]
    assert ids == [f"holder_{f.name}" for f in wp.holder] + ["state"]
    assert module(google_object, "holder_zone")["body"] == "12"


def test_design_sets_colour_logo_title_and_type() -> None:
    google_object = obj("parking")
    assert google_object["hexBackgroundColor"] == "#0f5132"
    assert google_object["logo"]["sourceUri"]["uri"] == f"{PUBLIC}/passes/parking/logo.png"
    assert google_object["cardTitle"]["defaultValue"]["value"] == "Bewohnerparken"
    assert google_object["genericType"] == "GENERIC_PARKING_PASS"
    assert obj("library")["hexBackgroundColor"] == "#0b3a75"


def test_validity_is_the_passes_interval_in_utc() -> None:
    wp = wallet_pass("library")
    interval = obj("library")["validTimeInterval"]
    assert interval["start"]["date"] == wp.valid_from.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert interval["end"]["date"] == wp.valid_until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert interval["end"]["date"] > interval["start"]["date"]


@pytest.mark.parametrize(
    ("state", "google_state", "text"),
    [
        ("valid", "ACTIVE", "Gültig"),
        ("suspended", "INACTIVE", "Vorübergehend gesperrt"),
        ("revoked", "INACTIVE", "Widerrufen"),
    ],
)
def test_state_maps_to_googles_state_and_a_text(state: Any, google_state: str, text: str) -> None:
    google_object = obj("parking", state=state)
    assert google_object["state"] == google_state
    assert module(google_object, "state")["body"] == text
    patch = state_patch(wallet_pass("parking", state=state))
    assert patch["state"] == google_state
    assert patch["textModulesData"] == google_object["textModulesData"]


def test_the_update_patch_carries_state_texts_code_and_validity_and_nothing_else() -> None:
    """A PATCH replaces whole arrays: the holder modules travel with the state, and the
    code and validity too, so a renewal (new token, same object) updates in place."""
    value = wallet_pass("library", state="revoked")
    patch = state_patch(value)
    assert set(patch) == {"state", "textModulesData", "barcode", "validTimeInterval"}
    assert [m["id"] for m in patch["textModulesData"]] == [
        "holder_card_number",
        "holder_name",
        "state",
    ]
    whole = generic_object(value, issuer_id=ISSUER_ID, design=design("library"),
                           public_base_url=PUBLIC)  # fmt: skip
    assert {k: whole[k] for k in patch} == patch  # the same values the saved object has


def test_a_renewal_lives_under_its_predecessors_object_id() -> None:
    value = replace(wallet_pass("library"), wallet_serial="FIRSTSERIAL00001")
    whole = generic_object(value, issuer_id=ISSUER_ID, design=design("library"),
                           public_base_url=PUBLIC)  # fmt: skip
    assert whole["id"] == f"{ISSUER_ID}.FIRSTSERIAL00001"
    assert whole["barcode"]["value"] == value.token


def test_reason_for_a_state_never_reaches_the_pass() -> None:
    wp = replace(wallet_pass("parking", state="revoked"), reason="Halter verstorben, Akte 4711")
    google_object = generic_object(
        wp, issuer_id=ISSUER_ID, design=design("parking"), public_base_url=PUBLIC
    )
    assert "Akte 4711" not in json.dumps(google_object)
    assert "Akte 4711" not in json.dumps(state_patch(wp))


def test_class_lays_out_the_card_face_from_the_design() -> None:
    google_class = generic_class(
        issuer_id=ISSUER_ID,
        pass_type=PASS_TYPES["parking"],
        design=design("parking"),
        public_base_url=PUBLIC + "/",
    )
    assert google_class["id"] == f"{ISSUER_ID}.parking"
    rows = google_class["classTemplateInfo"]["cardTemplateOverride"]["cardRowTemplateInfos"]
    paths = re.findall(r"object\.textModulesData\['([a-z_]+)'\]", json.dumps(rows))
    assert paths == ["holder_zone", "state"]
    # Every module the class refers to exists on the object.
    object_modules = {m["id"] for m in obj("parking")["textModulesData"]}
    assert set(paths) <= object_modules
    assert google_class["linksModuleData"]["uris"][0]["uri"] == PUBLIC + "/"


def test_two_front_fields_share_one_row() -> None:
    wide = replace(design("library"), front_fields=("card_number", "name"))
    google_class = generic_class(
        issuer_id=ISSUER_ID, pass_type=PASS_TYPES["library"], design=wide, public_base_url=PUBLIC
    )
    first = google_class["classTemplateInfo"]["cardTemplateOverride"]["cardRowTemplateInfos"][0]
    assert set(first) == {"twoItems"}


def test_design_naming_an_unknown_field_is_refused() -> None:
    wrong = replace(design("library"), front_fields=("plate",))
    with pytest.raises(PassTypeError, match="'plate' is not a holder field of pass type library"):
        generic_class(
            issuer_id=ISSUER_ID,
            pass_type=PASS_TYPES["library"],
            design=wrong,
            public_base_url=PUBLIC,
        )
    with pytest.raises(PassTypeError, match="plate"):
        generic_object(
            wallet_pass("library"), issuer_id=ISSUER_ID, design=wrong, public_base_url=PUBLIC
        )


def test_holder_values_are_data_not_markup() -> None:
    """A name is shown as Google renders text; it is carried verbatim, never interpreted."""
    wp = wallet_pass("library")
    odd = HolderField("name", Text(de="Name", en="Name"), '<a href="x">Ö"\\')
    wp = replace(wp, holder=(wp.holder[0], odd))
    google_object = generic_object(
        wp, issuer_id=ISSUER_ID, design=design("library"), public_base_url=PUBLIC
    )
    assert json.loads(json.dumps(google_object))["header"]["defaultValue"]["value"] == odd.value


# --- designs ---


def test_the_shipped_designs_load() -> None:
    for type_id, pass_type in PASS_TYPES.items():
        loaded = design(type_id)
        assert re.fullmatch(r"#[0-9a-f]{6}", loaded.background_color)
        assert loaded.logo == f"passes/{type_id}/logo.png"
        generic_class(
            issuer_id=ISSUER_ID, pass_type=pass_type, design=loaded, public_base_url=PUBLIC
        )


GOOD = 'background_color = "#0b3a75"\nlogo = "a.png"\n'


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ('background_color = "blue"\nlogo = "a.png"', "background_color"),
        ('background_color = "#0b3a75"\nlogo = "../../etc/passwd"', "logo"),
        ('background_color = "#0b3a75"\nlogo = "/abs.png"', "logo"),
        ('background_color = "#0b3a75"\nlogo = "https://evil.example/x.png"', "logo"),
        (GOOD + 'generic_type = "GENERIC_PIZZA"', "generic_type"),
        (GOOD + 'card_title = { de = "x" }', "card_title"),
        (GOOD + 'front_fields = ["a", "b", "c", "d"]', "front_fields"),
        (GOOD + "header_field = 3", "header_field"),
        (GOOD + 'colour = "#000000"', "unknown keys: colour"),
        ("background_color = ", "cannot be read"),
    ],
)
def test_bad_design_files_name_the_problem(tmp_path: Path, content: str, complaint: str) -> None:
    (tmp_path / "google").mkdir()
    (tmp_path / "google" / "design.toml").write_text(content, encoding="utf-8")
    with pytest.raises(PassTypeError, match=re.escape(complaint)) as caught:
        load_google_design(tmp_path)
    assert "design.toml" in str(caught.value)


def test_missing_design_says_the_type_has_none(tmp_path: Path) -> None:
    with pytest.raises(PassTypeError, match="no Google design"):
        load_google_design(tmp_path)


# --- save links ---


def test_save_link_verifies_with_the_public_key_and_has_the_claims(
    account: ServiceAccount,
) -> None:
    ids = [object_id(ISSUER_ID, "SERIAL0123456789")]
    url = save_url(account, object_ids=ids, origins=ORIGINS, now=NOW)
    assert url is not None and len(url) <= MAX_SAVE_LINK_LENGTH
    claims = decode_save_link(url, account)
    assert claims["typ"] == "savetowallet"
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["origins"] == ORIGINS
    assert claims["payload"] == {"genericObjects": [{"id": ids[0]}]}
    header = jwt.get_unverified_header(url.rsplit("/", 1)[1])
    assert header["alg"] == "RS256" and header["kid"] == PRIVATE_KEY_ID


def test_save_link_with_a_small_whole_object(account: ServiceAccount) -> None:
    small = {"id": f"{ISSUER_ID}.x", "classId": f"{ISSUER_ID}.library", "state": "ACTIVE"}
    small_class = {"id": f"{ISSUER_ID}.library"}
    url = save_url(account, objects=[small], classes=[small_class], origins=ORIGINS, now=NOW)
    assert url is not None
    payload = decode_save_link(url, account)["payload"]
    assert payload == {"genericClasses": [small_class], "genericObjects": [small]}


def test_save_link_with_a_whole_object_carries_its_class(account: ServiceAccount) -> None:
    """Google refuses an object whose class it does not have: the link brings the class along."""
    small = {"id": f"{ISSUER_ID}.x", "classId": f"{ISSUER_ID}.library", "state": "ACTIVE"}
    library = cls("library")
    url = save_url(account, objects=[small], classes=[library], origins=ORIGINS, now=NOW)
    assert url is not None
    assert decode_save_link(url, account)["payload"]["genericClasses"] == [library]
    with pytest.raises(ValueError, match="classes"):
        save_url(account, objects=[small], origins=ORIGINS, now=NOW)
    with pytest.raises(ValueError, match="classId"):
        save_url(account, objects=[small], classes=[cls("parking")], origins=ORIGINS, now=NOW)


def test_save_link_signed_with_another_key_does_not_verify(account: ServiceAccount) -> None:
    forged = replace(account, private_key=other_rsa_key())
    url = save_url(forged, object_ids=[f"{ISSUER_ID}.x"], origins=ORIGINS, now=NOW)
    assert url is not None
    with pytest.raises(jwt.InvalidSignatureError):
        decode_save_link(url, account)


def test_long_objects_never_give_a_link_over_the_limit(account: ServiceAccount) -> None:
    """A real pass (token in the QR code) is too long for a link: None, never a long URL."""
    whole = obj("library")
    assert save_url(account, objects=[whole], classes=[cls()], origins=ORIGINS, now=NOW) is None
    # The same object by id, after inserting it over REST, fits.
    short = save_url(account, object_ids=[whole["id"]], origins=ORIGINS, now=NOW)
    assert short is not None and len(short) <= MAX_SAVE_LINK_LENGTH


def test_no_link_is_ever_longer_than_the_limit(account: ServiceAccount) -> None:
    """Objects of growing size: links up to the limit come back, longer ones never do."""
    lengths: list[int | None] = []
    for size in range(0, 1500, 3):
        padded = {"id": f"{ISSUER_ID}.x", "classId": f"{ISSUER_ID}.library", "pad": "x" * size}
        classes = [{"id": f"{ISSUER_ID}.library"}]
        url = save_url(account, objects=[padded], classes=classes, origins=ORIGINS, now=NOW)
        lengths.append(None if url is None else len(url))
    returned = [n for n in lengths if n is not None]
    assert returned and max(returned) <= MAX_SAVE_LINK_LENGTH
    # Not over-cautious: three more bytes of JSON are four more characters of link.
    assert max(returned) > MAX_SAVE_LINK_LENGTH - 8
    assert lengths[-1] is None
    # Once too long, a larger object never fits again.
    first_none = lengths.index(None)
    assert all(n is None for n in lengths[first_none:])


def test_many_ids_never_give_a_link_over_the_limit(account: ServiceAccount) -> None:
    ids = [object_id(ISSUER_ID, f"SERIAL{i:010d}") for i in range(60)]
    assert save_url(account, object_ids=ids, origins=ORIGINS, now=NOW) is None
    assert save_url(account, object_ids=ids[:3], origins=ORIGINS, now=NOW) is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"objects": [{"id": "1.x"}], "object_ids": ["1.x"]},
        {"objects": [{"id": "1.x", "classId": "1.c"}]},
        {"objects": [{"id": "1.x", "classId": "1.c"}], "classes": [{"id": "1.d"}]},
        {"object_ids": ["1.x"], "classes": [{"id": "1.c"}]},
        {"object_ids": []},
        {"object_ids": ["../x"]},
        {"object_ids": ["1.x"], "origins": ["https://a.example/path"]},
        {"object_ids": ["1.x"], "origins": []},
        {"object_ids": ["1.x"], "now": NOW.replace(tzinfo=None)},
    ],
)
def test_save_url_refuses_misuse(account: ServiceAccount, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"origins": ORIGINS, "now": NOW, **kwargs}
    with pytest.raises(ValueError):
        save_url(account, **arguments)


# --- service account files ---


def test_service_account_file_loads(service_account_file: Path) -> None:
    account = load_service_account(service_account_file)
    assert account.email == SERVICE_ACCOUNT_EMAIL
    assert account.private_key_id == PRIVATE_KEY_ID
    assert account.token_uri == "https://oauth2.googleapis.com/token"
    assert account.private_key.public_key().public_numbers() == (
        service_account_key().public_key().public_numbers()
    )


def test_service_account_repr_never_shows_the_private_key(account: ServiceAccount) -> None:
    shown = repr(account) + str(account)
    assert SERVICE_ACCOUNT_EMAIL in shown
    assert "PRIVATE KEY" not in shown and "private_key=" not in shown
    assert str(account.private_key.private_numbers().d)[:20] not in shown


def _encrypted_pem() -> str:
    from cryptography.hazmat.primitives import serialization

    return (
        service_account_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        .decode()
    )


def _ec_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _small_rsa_pem() -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"private_key": None}, "private_key is missing"),
        ({"client_email": None}, "client_email is missing"),
        ({"private_key_id": ""}, "private_key_id is missing"),
        ({"token_uri": None}, "token_uri is missing"),
        ({"type": "authorized_user"}, '"type" must be "service_account"'),
        ({"client_email": "not-an-address"}, "client_email is not an e-mail address"),
        ({"token_uri": "http://oauth2.example/token"}, "token_uri must be an https URL"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
         "private_key is not a PEM private key"),
        ({"private_key": "__ENCRYPTED__"}, "private_key is encrypted"),
        ({"private_key": "__EC__"}, "private_key is not an RSA key"),
        ({"private_key": "__SMALL__"}, "1024 bits"),
    ],
)  # fmt: skip
def test_bad_key_files_give_config_errors_naming_the_problem(
    tmp_path: Path, overrides: dict[str, Any], complaint: str
) -> None:
    special = {"__ENCRYPTED__": _encrypted_pem, "__EC__": _ec_pem, "__SMALL__": _small_rsa_pem}
    if overrides.get("private_key") in special:
        overrides = {"private_key": special[overrides["private_key"]]()}
    path = write_service_account_file(tmp_path / "key.json", **overrides)
    with pytest.raises(ConfigError, match=re.escape(complaint)) as caught:
        load_service_account(path)
    assert str(path) in caught.value.message


def test_key_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text('{"type": "service_account", "private_key": "-----BEGIN', encoding="utf-8")
    with pytest.raises(ConfigError, match="is not JSON") as caught:
        load_service_account(path)
    assert "BEGIN" not in caught.value.message


@pytest.mark.parametrize("content", [b"[]", b'"key"', b"\xff\xfe\x00"])
def test_key_file_that_is_not_a_json_object(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=str(path)):
        load_service_account(path)


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_service_account(tmp_path / "absent.json")


def test_error_for_a_damaged_key_never_echoes_the_key(tmp_path: Path) -> None:
    """A key file with a damaged key must not leak the rest of the secret into logs."""
    body = pem(service_account_key()).splitlines()
    damaged = "\n".join([body[0], body[1][:-4] + "!!!!", *body[2:]])
    path = write_service_account_file(tmp_path / "key.json", private_key=damaged)
    with pytest.raises(ConfigError) as caught:
        load_service_account(path)
    text = caught.value.message + repr(caught.value)
    assert body[2] not in text and body[1][:20] not in text


def test_save_link_payload_is_compact_json(account: ServiceAccount) -> None:
    """Compact JSON keeps links short: the payload segment has no spaces."""
    url = save_url(account, object_ids=[f"{ISSUER_ID}.x"], origins=ORIGINS, now=NOW)
    assert url is not None
    segment = url.rsplit("/", 1)[1].split(".")[1]
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    assert b", " not in raw and b": " not in raw


def test_validity_in_another_timezone_is_written_in_utc() -> None:
    from datetime import timezone

    wp = wallet_pass("library")
    berlin = timezone(timedelta(hours=1))
    shifted = replace(wp, valid_from=wp.valid_from.astimezone(berlin))
    google_object = generic_object(
        shifted, issuer_id=ISSUER_ID, design=design("library"), public_base_url=PUBLIC
    )
    assert google_object["validTimeInterval"]["start"]["date"] == (
        wp.valid_from.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
