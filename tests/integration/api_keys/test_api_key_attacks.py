"""Attacks by someone who can edit one rotated secret (``PutSecretValue``), through the real handler.

The fake providers and an attacker's server all speak TLS with certificates the function trusts, so a
request that went the wrong way would really arrive: :class:`AttackerServer` records whatever reaches
it, and every test asserts it received nothing. Each attack is also checked for its effect at the
provider (nothing minted, nothing revoked) and for the category in the function's error log line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from integration.api_keys.support import (
    GENERIC_SENDGRID,
    ID_FIELD,
    PROVIDERS,
    VALUE_FIELD,
    ApiKeySecret,
    FakeAndSecret,
    generic_sendgrid_secret,
    rotate,
    secret_with_unstated_privileges,
    value_at,
)
from integration.support import stages, unique
from rotation_core.errors import Category, RotationError
from rotation_local import emulator, service
from rotation_local.fake_providers import (
    DEFAULT_SCOPES,
    FULL_ACCESS_SCOPES,
    AttackerServer,
    FakeAccount,
    FakeKey,
    FakeProviderServer,
)

Fake = Callable[..., FakeProviderServer]
Secret = Callable[..., ApiKeySecret]

# {a}: the attacker's host:port; {f}: the fake provider's host:port; {s}: a public host of the provider.
# Each reads differently to some URL parser, is plain http, or is a host the admin secret never pinned.
HOSTILE_URLS = [
    "https://{a}\\.{s}",
    "https://{a}\\@{s}",
    "https://{a}\\@{f}",
    "https://{f}@{a}",
    "https://{s}:x@{a}",
    "https://{a}#@{s}",
    "https://{a}?@{s}",
    "https://{a}%2f.{s}",
    "https://{a}%09.{s}",
    "https://{a}\t.{s}",
    "https://{a}\u3002{s}",
    "https://{a}/{s}",
    "HTTPS://{a}",
    "http://{a}",
    "https://localhost:{port}",
    "https://[::ffff:127.0.0.1]:{port}",
    "https://127.0.0.1.:{port}",
]
PUBLIC_HOST = {"datadog": "datadoghq.com", "sendgrid": "api.sendgrid.com", "twilio": "twilio.com",
               "cloudflare": "api.cloudflare.com"}  # fmt: skip
# Without a port the request goes to 443: where the host check and the connection read the host
# differently (the backslash), the attacker on localhost:443 would receive the admin credential.
NO_PORT_CONFUSIONS = ["https://localhost\\.{s}", "https://localhost\\@{s}", "https://localhost\\.{s}\\@x"]


def hostile(template: str, kind: str, attacker: AttackerServer, fake: FakeProviderServer) -> str:
    return template.format(
        a=f"127.0.0.1:{attacker.port}", f=f"127.0.0.1:{fake.port}", s=PUBLIC_HOST[kind], port=attacker.port
    )


def admin_of(fake: FakeProviderServer, pinned: bool) -> dict[str, Any]:
    """The admin secret, pinning the fake's URL, or not (then only the public endpoint qualifies)."""
    admin = fake.admin_secret()
    return admin if pinned else {k: v for k, v in admin.items() if k not in ("base_url", "api_base_url")}


def refused(
    handler: Any, event: dict[str, str], categories: set[Category], caplog: pytest.LogCaptureFixture
) -> RotationError:
    """The step fails with one of ``categories``, and its error log line says which."""
    with pytest.raises(RotationError) as caught:
        handler(event)
    assert caught.value.category in categories, caught.value.message
    logged = [r for r in caplog.records if r.levelname == "ERROR" and getattr(r, "category", None)]
    assert logged[-1].category == caught.value.category.value  # type: ignore[attr-defined]
    return caught.value


def refused_at_create(
    handler: Any, arn: str, categories: set[Category], caplog: pytest.LogCaptureFixture
) -> RotationError:
    """A new rotation's createSecret fails with one of ``categories``, as :func:`refused` checks."""
    token = emulator.stage_pending_placeholder(arn)
    return refused(handler, service.event("createSecret", arn, token), categories, caplog)


def put_current(sm_client: Any, arn: str, value: dict[str, Any]) -> None:
    """What the attacker can do: write a new AWSCURRENT value."""
    sm_client.put_secret_value(SecretId=arn, SecretString=json.dumps(value))


def put_pending(sm_client: Any, arn: str, value: dict[str, Any]) -> str:
    """Stage a rotation (as RotateSecret does) and write the attacker's value into its AWSPENDING version."""
    token = emulator.stage_pending_placeholder(arn)
    sm_client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"]
    )
    return token


@pytest.mark.parametrize("pinned", [True, False], ids=["admin-pins", "no-pin"])
@pytest.mark.parametrize("template", HOSTILE_URLS)
def test_attack_base_url_in_rotated_secret_sends_no_credential_anywhere(
    template: str, pinned: bool, provider_fake: FakeProviderServer, api_key_secret: Secret,
    attacker: AttackerServer, fast_handler: Any,
) -> None:  # fmt: skip
    fake = provider_fake
    secret = api_key_secret(fake, admin=admin_of(fake, pinned), base_url=hostile(template, fake.kind, attacker, fake))

    with pytest.raises(RotationError) as caught:  # all four steps, as a rotation would run them
        rotate(fast_handler(), secret.arn)

    assert caught.value.category in {Category.SECRET_FORMAT, Category.CONFUSED_DEPUTY, Category.TLS}
    assert "base_url" in caught.value.message
    assert attacker.received == []
    assert fake.requests == []  # refused before any request: the admin credential went nowhere


@pytest.mark.parametrize("template", NO_PORT_CONFUSIONS)
def test_attack_parser_confusion_towards_port_443_sends_nothing_there(
    template: str, provider_fake: FakeProviderServer, api_key_secret: Secret, attacker_on_443: AttackerServer,
    fast_handler: Any,
) -> None:  # fmt: skip
    fake = provider_fake
    public_base_url = template.format(s=PUBLIC_HOST[fake.kind])
    secret = api_key_secret(fake, admin=admin_of(fake, pinned=False), base_url=public_base_url)

    with pytest.raises(RotationError) as caught:
        rotate(fast_handler(), secret.arn)

    assert caught.value.category is Category.SECRET_FORMAT
    assert attacker_on_443.received == []


@pytest.mark.parametrize("step", ["setSecret", "testSecret", "finishSecret"])
@pytest.mark.parametrize("kind", ["datadog", "cloudflare"])
def test_attack_pending_base_url_cannot_redirect_the_new_key(
    kind: str, step: str, fake_and_secret: FakeAndSecret, attacker: AttackerServer,
    fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    _, secret = fake_and_secret(kind, repeat_base_url=True)  # repeating the pin is allowed
    original = value_at(sm_client, secret.arn, "AWSCURRENT")
    token = put_pending(sm_client, secret.arn, {**original, "base_url": attacker.base_url})

    handler = fast_handler()
    if step == "setSecret":  # setSecret only compares versions: the refusal comes at testSecret
        handler(service.event(step, secret.arn, token))
        step = "testSecret"
    refused(handler, service.event(step, secret.arn, token), {Category.CONFUSED_DEPUTY}, caplog)

    assert attacker.received == []
    assert value_at(sm_client, secret.arn, "AWSCURRENT") == original


@pytest.mark.parametrize("pinned", [True, False], ids=["admin-pins", "no-pin"])
def test_attack_twilio_api_base_url_never_receives_the_new_key(
    pinned: bool, make_fake: Fake, api_key_secret: Secret, attacker: AttackerServer, fast_handler: Any,
    sm_client: Any, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    fake = make_fake("twilio")
    admin = fake.admin_secret() if pinned else {k: v for k, v in fake.admin_secret().items() if k != "api_base_url"}
    secret = api_key_secret(fake, admin=admin, base_url=fake.base_url)
    original = value_at(sm_client, secret.arn, "AWSCURRENT")
    handler = fast_handler()

    # The attacker points the verification endpoint at their server, hoping testSecret sends the new
    # key there and their 200 gets it promoted.
    put_current(sm_client, secret.arn, {**original, "api_base_url": attacker.base_url})
    with pytest.raises(RotationError) as caught:
        rotate(handler, secret.arn)
    assert caught.value.category is Category.CONFUSED_DEPUTY
    emulator.drop_pending(secret.arn)
    put_current(sm_client, secret.arn, original)
    # ... or a pending version's, with a key the attacker obtained.
    new_key = fake.create_key("minted-elsewhere")
    pending = {**original, **fake.key_fields(new_key), "api_base_url": attacker.base_url}
    token = put_pending(sm_client, secret.arn, pending)
    for step in ("testSecret", "finishSecret"):
        refused(handler, service.event(step, secret.arn, token), {Category.CONFUSED_DEPUTY}, caplog)

    assert attacker.received == []
    assert value_at(sm_client, secret.arn, "AWSCURRENT") == original
    assert fake.count("POST", "") == 0


@pytest.mark.parametrize(
    "description",
    [
        {"revoke": {"method": "DELETE", "path": "/v3/api_keys/{id}"}},
        {
            "create": {
                "method": "POST",
                "path": "/v3/teammates",
                "body": {"email": "attacker@example.com", "is_admin": True},
            }
        },
        {"verify": {"method": "DELETE", "path": "/v3/api_keys/{id}"}},
    ],
)
def test_attack_http_description_in_rotated_secret_refused_before_any_request(
    description: dict[str, Any], make_fake: Fake, sm_client: Any, fast_handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake("sendgrid")  # the generic provider, describing SendGrid's API, in the admin secret
    arn, key = generic_sendgrid_secret(sm_client, fake, http={**GENERIC_SENDGRID, **description})

    error = refused_at_create(fast_handler(), arn, {Category.SECRET_FORMAT}, caplog)

    assert 'Move "http" into the admin secret' in error.message
    assert fake.requests == []
    assert fake.is_valid(key.value)


#: The ``secret_and_victim`` fixture: ``fake, secret, genuine, victim = secret_and_victim(kind)``.
SecretAndVictim = Callable[[str], tuple[FakeProviderServer, ApiKeySecret, dict[str, Any], FakeKey]]


@pytest.fixture
def secret_and_victim(fake_and_secret: FakeAndSecret, sm_client: Any) -> SecretAndVictim:
    """The fake, a rotated secret repeating its admin's pin, its AWSCURRENT value, and the victim's key.

    The victim's key is another team's in the same account: not this secret's, but its id is one an
    attacker with PutSecretValue can write into a version.
    """

    def make(kind: str) -> tuple[FakeProviderServer, ApiKeySecret, dict[str, Any], FakeKey]:
        fake, secret = fake_and_secret(kind, repeat_base_url=True)
        genuine = value_at(sm_client, secret.arn, "AWSCURRENT")
        return fake, secret, genuine, fake.create_key("another-teams-key")

    return make


@pytest.mark.parametrize("kind", PROVIDERS)
def test_attack_foreign_key_id_in_a_version_is_never_revoked(
    kind: str, secret_and_victim: SecretAndVictim, fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, secret, genuine, victim = secret_and_victim(kind)
    handler = fast_handler()
    id_field = ID_FIELD[kind]
    # With PutSecretValue only: write a version naming the victim's id (the key value stays the
    # attacker's own), then write the genuine value back, which leaves the forged one as AWSPREVIOUS.
    put_current(sm_client, secret.arn, {**genuine, id_field: victim.id})
    forged_version = next(v for v, s in stages(sm_client, secret.arn).items() if "AWSCURRENT" in s)
    put_current(sm_client, secret.arn, genuine)
    assert value_at(sm_client, secret.arn, "AWSPREVIOUS")[id_field] == victim.id

    token = rotate(handler, secret.arn)

    assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]
    assert fake.is_valid(victim.value)
    assert fake.count("DELETE", "") == 0
    skipped = [r for r in caplog.records if getattr(r, "revoke_skipped", False)]
    assert [getattr(r, "version", None) for r in skipped] == [forged_version]


@pytest.mark.parametrize("kind", PROVIDERS)
def test_attack_forged_current_id_refused_before_minting_or_revoking(
    kind: str, secret_and_victim: SecretAndVictim, fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, secret, genuine, victim = secret_and_victim(kind)
    if kind == "sendgrid":  # the victim's key may do more than the attacker's: SendGrid's weak proof must see it
        victim.extra["scopes"] = ["full access"]
    put_current(sm_client, secret.arn, {**genuine, ID_FIELD[kind]: victim.id})

    error = refused_at_create(fast_handler(), secret.arn, {Category.CONFUSED_DEPUTY}, caplog)

    assert "Nothing was minted" in error.message
    assert fake.count("POST", "") == 0
    assert fake.count("DELETE", "") == 0
    assert fake.is_valid(victim.value)


@dataclass
class TwoTeams:
    """Team A's rotated secret, and team B's account with one key and its own admin secret, at one fake."""

    fake: FakeProviderServer
    a: ApiKeySecret
    a_value: dict[str, Any]
    b: FakeAccount
    b_key: FakeKey
    b_admin_arn: str


@pytest.fixture
def two_teams(fake_and_secret: FakeAndSecret, sm_client: Any) -> Callable[[str], TwoTeams]:
    def make(kind: str) -> TwoTeams:
        fake, team_a = fake_and_secret(kind, repeat_base_url=True)
        team_b = fake.add_account()
        b_key = fake.create_key("team-b-key", account=team_b)
        b_admin = json.dumps(fake.admin_secret(team_b))
        b_admin_arn = sm_client.create_secret(Name=unique("admin-b"), SecretString=b_admin)["ARN"]
        a_value = value_at(sm_client, team_a.arn, "AWSCURRENT")
        return TwoTeams(fake=fake, a=team_a, a_value=a_value, b=team_b, b_key=b_key, b_admin_arn=b_admin_arn)

    return make


@pytest.mark.parametrize("kind", PROVIDERS)
def test_attack_adminarn_of_another_team_mints_nothing_in_either_account(
    kind: str, two_teams: Callable[[str], TwoTeams], fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    teams = two_teams(kind)
    fake = teams.fake
    put_current(sm_client, teams.a.arn, {**teams.a_value, "adminarn": teams.b_admin_arn})

    refused_at_create(fast_handler(), teams.a.arn, {Category.CONFUSED_DEPUTY}, caplog)

    assert fake.count("POST", "") == 0
    assert fake.count("DELETE", "") == 0
    assert [key.name for key in fake.live_keys(teams.b)] == ["team-b-key"]
    assert fake.is_valid(teams.b_key.value)
    assert fake.is_valid(teams.a_value[VALUE_FIELD[kind]])


@pytest.mark.parametrize("kind", ["datadog", "twilio", "cloudflare"])
def test_attack_other_teams_admin_with_its_key_id_refused_where_the_provider_ties_value_to_id(
    kind: str, two_teams: Callable[[str], TwoTeams], fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    teams = two_teams(kind)
    forged = {**teams.a_value, "adminarn": teams.b_admin_arn}
    forged[ID_FIELD[kind]] = teams.b_key.id  # B's key id, A's key value
    if kind == "twilio":
        forged["account_sid"] = teams.b.account_sid
    put_current(sm_client, teams.a.arn, forged)

    refused_at_create(fast_handler(), teams.a.arn, {Category.CONFUSED_DEPUTY}, caplog)

    assert teams.fake.count("POST", "") == 0
    assert [key.name for key in teams.fake.live_keys(teams.b)] == ["team-b-key"]


@pytest.mark.parametrize(("kind", "field", "value"), [
    ("sendgrid", "scopes", ["full access"]),
    ("cloudflare", "policies", [{"effect": "allow", "resources": {"com.cloudflare.api.account.*": "*"},
                                 "permission_groups": [{"id": "all", "name": "Everything"}]}]),
    ("twilio", "policy", {"allow": ["/twilio"]}),
])  # fmt: skip
def test_attack_privileges_in_rotated_secret_cannot_widen_the_new_key(
    kind: str, field: str, value: Any, fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    fake, secret = fake_and_secret(kind)
    put_current(sm_client, secret.arn, {**value_at(sm_client, secret.arn, "AWSCURRENT"), field: value})

    error = refused_at_create(fast_handler(), secret.arn, {Category.SECRET_FORMAT}, caplog)

    assert f'Move "{field}" into the admin secret' in error.message
    assert fake.count("POST", "") == 0


#: A Twilio admin secret's verification request that a key restricted to reading messages may make.
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
READ_MESSAGES = {"allow": ["/twilio/messaging/messages/read"]}


@pytest.mark.parametrize("kind", ["cloudflare", "twilio"])
def test_rotation_new_key_has_exactly_the_current_keys_privileges(
    kind: str, make_fake: Fake, api_key_secret: Secret, fast_handler: Any, sm_client: Any
) -> None:
    """Where the provider ties the value to its id, the new key copies the privileges the provider reports."""
    fake = make_fake(kind)
    if kind == "cloudflare":
        policies = [{"effect": "allow", "resources": {"zone": "one"}, "permission_groups": [{"id": "r"}]}]
        restricted, field, expected = fake.create_key("restricted-key", policies=policies), "policies", policies
        admin = fake.admin_secret()
    else:
        restricted = fake.create_key("restricted-key", key_type="restricted", policy=READ_MESSAGES)
        field, expected, admin = "policy", READ_MESSAGES, fake.admin_secret(verify_path=MESSAGES_PATH)
    secret = api_key_secret(fake, admin=admin, **fake.key_fields(restricted))

    rotate(fast_handler(), secret.arn)

    new_key = fake.key_by_value(value_at(sm_client, secret.arn, "AWSCURRENT")[VALUE_FIELD[kind]])
    assert new_key is not None
    assert new_key.name.startswith("sm-rotation-")
    assert new_key.extra[field] == expected


def test_rotation_sendgrid_new_key_has_exactly_the_admin_secrets_scopes(
    make_fake: Fake, api_key_secret: Secret, fast_handler: Any, sm_client: Any
) -> None:
    """SendGrid ties no value to an id: whatever the stored id's record says, the admin secret's scopes win."""
    fake = make_fake("sendgrid")
    wide = fake.create_key("wide-key", scopes=["mail.send", "alerts.read", "user.profile.read"])
    secret = api_key_secret(fake, admin=fake.admin_secret(scopes=["mail.send"]), **fake.key_fields(wide))

    rotate(fast_handler(), secret.arn)

    new_key = fake.key_by_value(value_at(sm_client, secret.arn, "AWSCURRENT")["api_key"])
    assert new_key is not None
    assert new_key.extra["scopes"] == ["mail.send"]


def test_attack_sendgrid_id_swap_in_one_account_mints_only_the_admin_secrets_scopes(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A swapped id of the same account: refused when its record holds more than the value, else harmless."""
    fake, secret = fake_and_secret("sendgrid")
    genuine = value_at(sm_client, secret.arn, "AWSCURRENT")
    privileged = fake.create_key("privileged-key", scopes=["mail.send", "api_keys.create", "api_keys.read"])
    put_current(sm_client, secret.arn, {**genuine, "api_key_id": privileged.id})

    refused_at_create(fast_handler(), secret.arn, {Category.CONFUSED_DEPUTY}, caplog)
    assert fake.count("POST", "") == 0
    emulator.drop_pending(secret.arn)
    narrower = fake.create_key("narrower-key", scopes=["mail.send"])
    put_current(sm_client, secret.arn, {**genuine, "api_key_id": narrower.id})

    rotate(fast_handler(), secret.arn)

    minted = fake.key_by_value(value_at(sm_client, secret.arn, "AWSCURRENT")["api_key"])
    assert minted is not None
    assert minted.extra["scopes"] == DEFAULT_SCOPES  # the admin secret's, not the swapped-in id's
    assert fake.is_valid(narrower.value)  # the swapped-in id is never revoked: not named for this secret
    assert fake.is_valid(privileged.value)


@dataclass
class ForeignValue:
    """Issue #24's attack: a full-access key of the editor's own account with a privileged id of the company's."""

    fake: FakeProviderServer
    arn: str
    privileged: FakeKey
    foreign: FakeKey
    original: dict[str, Any]


@pytest.fixture
def foreign_value(make_fake: Fake, sm_client: Any) -> Callable[[str], ForeignValue]:
    """A SendGrid fake with the company's account and the editor's own, and the editor's forged AWSCURRENT.

    ``provider`` is ``sendgrid`` (the built-in provider) or ``http`` (the generic one describing SendGrid's API).
    """

    def make(provider: str) -> ForeignValue:
        fake = make_fake("sendgrid")
        company = fake.admin_secret()
        if provider == "http":
            company = {**company, "provider": "http", "http": GENERIC_SENDGRID}
        admin_arn = sm_client.create_secret(Name=unique("admin"), SecretString=json.dumps(company))["ARN"]
        own = fake.create_key("the-editors-key")
        value = {"provider": provider, "adminarn": admin_arn, "api_key": own.value, "api_key_id": own.id}
        arn = sm_client.create_secret(Name=unique("apikey"), SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        privileged = fake.create_key(
            "company-admin-key", scopes=["api_keys.create", "api_keys.read", "api_keys.delete"]
        )
        editors_account = fake.add_account()
        foreign = fake.create_key("editors-full-access", account=editors_account, scopes=list(FULL_ACCESS_SCOPES))
        put_current(sm_client, arn, {**value, "api_key": foreign.value, "api_key_id": privileged.id})
        return ForeignValue(fake, arn, privileged, foreign, value_at(sm_client, arn, "AWSCURRENT"))

    return make


def test_attack_sendgrid_foreign_full_access_value_with_privileged_id_mints_nothing(
    foreign_value: Callable[[str], ForeignValue], attacker: AttackerServer, fast_handler: Any, sm_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    attack = foreign_value("sendgrid")
    fake = attack.fake
    keys_before = [(key.id, key.revoked, dict(key.extra)) for key in fake.keys]

    error = refused_at_create(fast_handler(), attack.arn, {Category.CONFUSED_DEPUTY}, caplog)

    assert "different accounts" in error.message
    assert "Nothing was minted" in error.message
    assert fake.count("POST", "") == 0
    assert fake.count("DELETE", "") == 0
    assert [(key.id, key.revoked, dict(key.extra)) for key in fake.keys] == keys_before  # nothing minted or altered
    assert value_at(sm_client, attack.arn, "AWSCURRENT") == attack.original
    assert attacker.received == []


def test_attack_generic_provider_foreign_value_with_privileged_id_gets_only_the_admin_secrets_privileges(
    foreign_value: Callable[[str], ForeignValue], attacker: AttackerServer, fast_handler: Any, sm_client: Any
) -> None:
    """Without verify.id_path nothing ties a value to an id: the new key is what the admin secret's body says."""
    attack = foreign_value("http")
    fake = attack.fake

    rotate(fast_handler(), attack.arn)

    minted = fake.key_by_value(value_at(sm_client, attack.arn, "AWSCURRENT")["api_key"])
    assert minted is not None
    assert minted.account is fake.account
    assert minted.extra["scopes"] == GENERIC_SENDGRID["create"]["body"]["scopes"]  # type: ignore[index]
    assert not set(attack.privileged.extra["scopes"]) & set(minted.extra["scopes"])
    assert fake.count("DELETE", "") == 0
    assert fake.is_valid(attack.privileged.value)
    assert fake.is_valid(attack.foreign.value)
    assert attacker.received == []


@pytest.mark.parametrize("provider", ["sendgrid", "http"])
def test_attack_admin_secret_stating_no_privileges_mints_nothing_where_no_value_is_tied(
    provider: str, make_fake: Fake, sm_client: Any, fast_handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Where no value is tied to an id, an admin secret that states no privileges refuses to mint."""
    fake = make_fake("sendgrid")
    arn, key = secret_with_unstated_privileges(sm_client, fake, provider)

    error = refused_at_create(fast_handler(), arn, {Category.SECRET_FORMAT}, caplog)

    assert ('"scopes"' if provider == "sendgrid" else '"http.create.body"') in error.message
    assert fake.requests == []
    assert fake.is_valid(key.value)


def test_attack_oversized_provider_answer_is_refused_unread(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, secret = fake_and_secret("datadog")
    original = value_at(sm_client, secret.arn, "AWSCURRENT")
    oversized = b'{"valid": true, "pad": "' + b"x" * (2 << 20) + b'"}'
    fake.fail_next(200, method="GET", route="/api/v1/validate", body=oversized)

    error = refused_at_create(fast_handler(), secret.arn, {Category.VERIFICATION}, caplog)

    assert "more than 1024 KiB" in error.message
    assert fake.count("POST", "") == 0
    assert value_at(sm_client, secret.arn, "AWSCURRENT") == original
