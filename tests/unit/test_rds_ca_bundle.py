"""The Amazon RDS CA bundle shipped in the layer, and how the engines' default CA bundle is built.

No network: the TLS handshakes below run over memory buffers.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rotation_core.engines import tls
from rotation_core.engines.base import TlsMode
from rotation_core.engines.mysql.engine import _tls_context
from rotation_core.errors import ConfigurationError
from rotation_local import rds_ca_bundle

LAYER = Path(__file__).resolve().parents[2] / "layers" / "rotation_core"
SHIPPED = LAYER / "certs" / "rds-global-bundle.pem"
NOTE = LAYER / "certs" / "README.md"
ROOT_NAME = re.compile(r"^Amazon RDS (?P<region>.+) Root CA (?P<kind>RSA2048|RSA4096|ECC384) G1$")
KINDS = ("RSA2048", "RSA4096", "ECC384")  # rds-ca-rsa2048-g1, rds-ca-rsa4096-g1, rds-ca-ecc384-g1

# The commercial regions of the RDS User Guide's "Certificate bundles by AWS Region" table (2026-12-01).
AWS_DOCUMENTED_REGIONS = frozenset({
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1", "ap-south-2", "ap-southeast-3",
    "ap-southeast-5", "ap-southeast-4", "ap-south-1", "ap-northeast-3", "ap-southeast-7", "ap-northeast-1",
    "ap-northeast-2", "ap-southeast-1", "ap-southeast-2", "ca-central-1", "ca-west-1", "eu-central-1", "eu-west-1",
    "eu-west-2", "eu-south-1", "eu-west-3", "eu-south-2", "eu-north-1", "eu-central-2", "il-central-1",
    "mx-central-1", "me-south-1", "me-central-1", "sa-east-1",
})  # fmt: skip
# Newer than the npm package the bundle came from (certs/README.md); a refresh from AWS brings them in.
MISSING_REGIONS = frozenset({"ap-southeast-5", "ap-southeast-7", "ca-west-1", "il-central-1", "mx-central-1"})
# AWS's own beta and preview endpoints, which AWS's global bundle also carries.
EXTRA_REGIONS = frozenset({"Beta us-east-1", "Preview us-east-2"})

# SHA-256 fingerprints (RSA2048, RSA4096, ECC384) per region, as recorded in certs/README.md.
EXPECTED_ROOTS = {
    "Beta us-east-1": (
        "9c170caada139e8bf1add0d9f44a81e8e62df2115854914284794dab223dcf82",
        "b89aeb92200e5434ba58b30a3e418a47f772542292ae7d569b072fdcfd345de3",
        "3d64b3edc6b8b3ffe0cf0c8ee91de915aca376ad818d6d78362686df99c80129",
    ),
    "Preview us-east-2": (
        "50c530bc483367c49a89bf32d18d5a3c1917f577b147ea62bcec79375a69854e",
        "2ed2b79cf308ce70ddae58b52057788977c7f039ed0a5c4727908b807ac3e128",
        "d96605e5acb0c7a91f28bf091361c0f80e68a77013272a50276b3dafb9542a3b",
    ),
    "af-south-1": (
        "93e1ba1b78cc87bd5418456a356dab93868592d2676591be88dfdddce9f0e7a1",
        "3c82c0d1b0fab07a7a30abccc30725f0426f2a7c011f369896b86427bf983a1b",
        "3f080199196980898679820cdaef05641ab38d7da88b5a8a4b43f516047a4670",
    ),
    "ap-east-1": (
        "f847fd24500e9f8e64e9171c864c8260d121b2f2829fa7fc8c5c1cf8178bc0c8",
        "bf81762487be91062cdc35cd7dd519870e5d767d23488d13c6a66b7f77e114bd",
        "d3b2fb714fae16dbb0b2bc48884885570188e594cd227afd481372bc4f21d163",
    ),
    "ap-northeast-1": (
        "08544470dfa4c9dc25c481a8908d2958f90b9c1d23f275696f341d71f2f1539e",
        "dc4bd074909909f9e5288408f2a148261aa506711307ae0a6561df152e07e04c",
        "1cb5dcfb2e4db29fdb966e31c5da9f620bf06a10f5880205131a0e6a5bdf80d7",
    ),
    "ap-northeast-2": (
        "e8de13bf9665ba1a2967008028ffe4f9b4f0a6def6e3caf76e0d496cd6facffc",
        "00ff49c08b7d5dc53328784986580948d06ee9b2f0f1e6b6eae70ccdedf5f757",
        "f47a584f42f3d9fd1e0f8908ae65a67ec7cc50340a616871563bde5d889a9cc0",
    ),
    "ap-northeast-3": (
        "43551a53a5197322e6aa5e120e2c59e308b8371af74ce8367769820ad00908c8",
        "22c209007e2f6c000e7661563393132370933159e78ff1ecaa2b761014e2f80b",
        "ef0179e8f0f069eaaac6d3cb1b4ea4ad12c0db139dc24dd88892d884be348da6",
    ),
    "ap-south-1": (
        "ff6a599c9e966b146a57725e1d9a19c72f5f08407f0a2d3350aa9ae9212339b8",
        "27111555461f373d983c7911a3406cf532e0b5d3929b9175a54e400e442ef557",
        "333de57f904b25d90b1ea19730ab91c495adbaf1480b0f2bbaf17d2e21af52bf",
    ),
    "ap-south-2": (
        "3a730d2458c61f7211ac674aaf798eaae0c65edd8f5b0f410d0d4c5223482bf9",
        "e841e076fcd83fdf6daea1bfcfb553c99a4197988cb35ebfaf71993e49a92ede",
        "dbfe752e9b5bd14c968f1655a34570505d2476f5b6151523ca70d792c2a79c14",
    ),
    "ap-southeast-1": (
        "2994dd350da7fc30a1c9a95303773f3f381ba92af9805e4947d6f9963b770b80",
        "579e3ea1325bfc49cfdf6a934b3f8f1228e1e0d4b8e6ae34e7d22dda2c2b7bbd",
        "712a2eaa456b3d16cb6fb20a786b5958d91270e100430c091264d7f456f2a0e3",
    ),
    "ap-southeast-2": (
        "742db53f2f8970ec4c7801784763c519d5485b197023ec4bb55526125469654a",
        "8bde3d208554fb7409da40771c9c6684881daacce02c2d40be75d28de45c5231",
        "02a28548ccc140000e50911afa4677850ac93635e20ad76f822d91f50324e853",
    ),
    "ap-southeast-3": (
        "533849068049dbb282750393e71646cef9e20256fe2ed59211bfe4b79edf91e8",
        "11bedbb33c2d1dfc28b75029441e8f6c845330a40372b117b7cdc0946f5c748d",
        "cba9effcc625b81c17084e7ab3bc8ad10ac3cf2c370a062dc2b759cc4c5cb4c6",
    ),
    "ap-southeast-4": (
        "8876f8a284859d9048d41b0cf8b1724bf4a8a7fe4ecf7e9cbb28481c28698741",
        "ed0b9b254182e524aa4091d41e94d7a6ecaec07811c8c7ac914e942591cedad9",
        "53e0148366019592ecca4fcf8098f7619e94279120080fa3df0847bf261c65d3",
    ),
    "ca-central-1": (
        "205403dc9e903714227f035610c9918fd3f603d82deb5b3dfc728079c1a2c778",
        "09b798b9d54c2acf8ab964dfb0b97bb9edb39d7a873f9ed532eb08340b5bdb54",
        "d2267e8646f81299adfb79e774447c31fb4ccc6506c4631f5aa40ee195233517",
    ),
    "eu-central-1": (
        "3d8b08a7390c9b10d190a6b349d703ae00bae46583643319c7faccf3e5dc4a8b",
        "3111f322e448c26ea2722c02e29714dace16d5c39336cdf6dfbffbc0368d5332",
        "ae697d082ee1862f711ecae3893c3c613b7315d020f74674051534a5b166d47b",
    ),
    "eu-central-2": (
        "97477e83609fc31e6312009830b36faeec32ad317f91531a21ace6448b6416c6",
        "969ed937f0f63f9fa703bea5089d2b3ea0164f32d843d26b2edd74f07b44df28",
        "896ef0d9c66ac5ac46e12bcd8f44dc2065b9006983b8b3c3203a4ab951f63368",
    ),
    "eu-north-1": (
        "4a3e1f8cd4ccfa64383ffd81344defe69d97c661dbde51a70dadc0b1f688561b",
        "a91830f1068b9fedf5a3e13805e0efafdc6dab2c4903eb032f52884fee2110a7",
        "7e0f13147f65b845268f62c446f2785040a007f8e92fb0e42987e9b848068da8",
    ),
    "eu-south-1": (
        "8ea634c367d3f18a471da9bb38f833cbec4a408e472b58ad7d69bd47390a6640",
        "5c6ef8941085cb1060a14ab7bc439a3c21d3a704631b702b1393c0ab6cabb47d",
        "b655ee075c71c0cd89bc2c0339e960f6ba9238efbc9b5d1ea8d257cf4fa0a424",
    ),
    "eu-south-2": (
        "073d43d98b8ca4444b7321ff9887525c7804a76930770b2a202aca582caa234d",
        "cf6fbdc3c0bb45d94c092458d7c867f705423a4a5f16b398b72e3c339b15d5d3",
        "a74816bc5f13d5653e81c172627428f66f485a34db1e19d0f4925c1c61cd504b",
    ),
    "eu-west-1": (
        "6f7e01b62af24058417130b21e5fb9ad9f29b29c775c5107b657419010975886",
        "62e29ef90310947eed5d5546021d636008fad329fab9ea31ba1ae768b734f29a",
        "88ecf027448f7198f3c1a6762474c4658dab35a18686af6b65de3c4023c6d0b2",
    ),
    "eu-west-2": (
        "3455640af7798b30da9c6179b5e21e23d95dabb7873a12fec70b02092745f04e",
        "147ad44255877d39e1a5d247c3dba006cf4479cd031eea34ae071287553a0215",
        "c990ee37225e4ecc989d9e5f81089614d1f6977db650d1d1ea61462812e71b02",
    ),
    "eu-west-3": (
        "1a954c0f6ea17874d55d02c7f1948236bd32c926be5fd28ec5aedffbc036226b",
        "eab48bcff49f906eae57552efce499a4cfa42f9003a4e9549b182062891155cf",
        "1a8027a4be83ff1e3cde85baa9d09c8b6cac0145ee5cc437389da4d3456d7fd9",
    ),
    "me-central-1": (
        "2b2a720f801b251f8cd4080c1cb56520020f0bafa56f90fb206e1b66dfc3d5a2",
        "6420fc61de5715c965c04e1071c40ab8d6b42e19842b9228b683eb7f190a4552",
        "8056ffc06567b146a5f4649c7d77b20f82d63585bb097467ee281231c2e1bb4b",
    ),
    "me-south-1": (
        "a42a4e21d76ef9f4b34801a13994f49afa9745573b71fc65dae504732ee3a863",
        "6b9dd4a4d86d5b3cd5179355cd1ca157e71ba8470e6fc330245fa1f67febf8e5",
        "4c9be86992c1231cf519bb58b7277e8d86d88c76eea310bef7a5ec1c6eb9bd6b",
    ),
    "sa-east-1": (
        "376e82dd0d72b3f4234e1dad34f7bc086d51947f8b343a887e3ae122e0fd212b",
        "4d895d0786fd52b513554e73a07c2c0df47138e834a4338866e4d4bdc85778a3",
        "80ca8be42d38ea097fc733d79fc73d595f95f3834e04bb4efed15f1be53e8790",
    ),
    "us-east-1": (
        "e4ce41d069f4bdcdb714259058961ee42ed18cf2bf627a3d647aff25437d4b68",
        "1c753cf0334ff82a47e0d3205839c8549b7d9a8a3d9a685cccecc80f82fe97e6",
        "82d99e9e409703044c3f886f87a0408c96cd74dee2c9ba920e6553a32e372539",
    ),
    "us-east-2": (
        "68996553f8c736aa4c56de4898e0947c208c81f0c9e2b57dea7bf718ef59512f",
        "e48a40eb9ce3f24d9ede8947ccdb60b2970b1b2d75acc0e991e71ef8eac9dbfb",
        "6a026963875a74234cc4deaeed7f31c15ee31127e0755e6a889de9f23946f660",
    ),
    "us-west-1": (
        "c044a867d2df87500e4f86f5188baf94d8b47497ea7033bad01907b6f2c82be3",
        "f0bd8094918f0c8b767c2696b98bd2f44b9e3f67f948552234c955cb4a864e44",
        "9634bd929cb698e0327e4a315d6cab4c19b54fcbbf6a4e61f7edbec2139cb309",
    ),
    "us-west-2": (
        "86e22f41c79b0de5777054189cfadbddf633a8a1dc09ef134db07a756e494abe",
        "2888c2f870f2a58ebdeef3a3340b2f9810595b5a3466574f22ba97b778a5edbe",
        "01926d42a0dc63915005f3d2b8d7c07efd9451fc14889142d8c4fa6021a6a95e",
    ),
}

# SHA-1 thumbprints AWS publishes in describe-certificates examples: the AWS CLI reference (us-west-2), and
# the JavaScript SDK reference (us-east-1), which masks the last 7 hex digits.
AWS_THUMBPRINTS = {
    ("us-west-2", "RSA2048"): "7c40cb42714b6fdb2b296f9bbd0e8bb364436a76",
    ("us-west-2", "RSA4096"): "19da4f2af579a8ae1f6a0fa77aa5befd874b4cab",
    ("us-west-2", "ECC384"): "2ee3dcc06e50192559b13929e73484354f23387d",
    ("us-east-1", "RSA2048"): "2fa77ef894d983ba9d37ad699c84ab0f6",
    ("us-east-1", "RSA4096"): "9da6fa7fd2ec09c569a400d876b01b0c1",
    ("us-east-1", "ECC384"): "24a97b91cbe86911190576c35c36aab4f",
}
AWS_VALIDITY = {  # ValidFrom, ValidTill in the same examples
    ("us-west-2", "RSA2048"): ("2021-05-24T21:59:00+00:00", "2061-05-24T22:59:00+00:00"),
    ("us-west-2", "RSA4096"): ("2021-05-24T22:03:20+00:00", "2121-05-24T23:03:20+00:00"),
    ("us-west-2", "ECC384"): ("2021-05-24T22:06:59+00:00", "2121-05-24T23:06:59+00:00"),
    ("us-east-1", "RSA2048"): ("2021-05-25T22:34:57+00:00", "2061-05-25T23:34:57+00:00"),
    ("us-east-1", "RSA4096"): ("2021-05-25T22:38:35+00:00", "2121-05-25T23:38:35+00:00"),
    ("us-east-1", "ECC384"): ("2021-05-25T22:41:55+00:00", "2121-05-25T23:41:55+00:00"),
}


def load(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def pem_blocks(path: Path) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", path.read_text(), re.S)


def der(certificates: list[x509.Certificate]) -> list[bytes]:
    return [certificate.public_bytes(serialization.Encoding.DER) for certificate in certificates]


def name_of(certificate: x509.Certificate) -> tuple[str, str]:
    common_name = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    match = ROOT_NAME.match(str(common_name))
    assert match is not None, common_name
    return match["region"], match["kind"]


@pytest.fixture(scope="module")
def shipped() -> list[x509.Certificate]:
    return load(SHIPPED)


@pytest.fixture(scope="module")
def roots(shipped: list[x509.Certificate]) -> dict[tuple[str, str], x509.Certificate]:
    by_name = {name_of(certificate): certificate for certificate in shipped}
    assert len(by_name) == len(shipped), "two certificates share a region and key kind"
    return by_name


# --- the shipped file -------------------------------------------------------------------------------------


def test_shipped_rds_bundle_parses_87_certificates(shipped: list[x509.Certificate]) -> None:
    assert len(shipped) == 87
    assert SHIPPED.read_text(encoding="ascii").count("-----BEGIN CERTIFICATE-----") == 87


def test_shipped_rds_bundle_every_certificate_is_an_unexpired_self_signed_root_ca(
    shipped: list[x509.Certificate],
) -> None:
    now = dt.datetime.now(dt.UTC)
    for certificate in shipped:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.value.ca, certificate.subject
        assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc, certificate.subject
        assert certificate.issuer == certificate.subject
        certificate.verify_directly_issued_by(certificate)  # raises unless the self-signature is valid


def test_shipped_rds_bundle_key_type_matches_subject(roots: dict[tuple[str, str], x509.Certificate]) -> None:
    for (_region, kind), certificate in roots.items():
        key = certificate.public_key()
        if kind == "ECC384":
            assert isinstance(key, ec.EllipticCurvePublicKey)
            assert key.curve.name == "secp384r1"
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            assert f"RSA{key.key_size}" == kind


def test_shipped_rds_bundle_regions_are_aws_documented_regions_minus_known_gaps(
    roots: dict[tuple[str, str], x509.Certificate],
) -> None:
    regions = {region for region, _kind in roots}
    assert regions == set(EXPECTED_ROOTS)
    assert regions == (AWS_DOCUMENTED_REGIONS - MISSING_REGIONS) | EXTRA_REGIONS
    assert len(regions - EXTRA_REGIONS) == 27


def test_shipped_rds_bundle_every_region_has_the_three_g1_roots(
    roots: dict[tuple[str, str], x509.Certificate],
) -> None:
    for region in EXPECTED_ROOTS:
        assert [kind for kind in KINDS if (region, kind) in roots] == list(KINDS), region


def test_shipped_rds_bundle_fingerprints_equal_recorded(roots: dict[tuple[str, str], x509.Certificate]) -> None:
    fingerprints = {name: certificate.fingerprint(hashes.SHA256()).hex() for name, certificate in roots.items()}
    expected = {
        (region, kind): sha256
        for region, row in EXPECTED_ROOTS.items()
        for kind, sha256 in zip(KINDS, row, strict=True)
    }
    assert fingerprints == expected


def test_shipped_rds_bundle_matches_aws_published_thumbprints_and_validity(
    roots: dict[tuple[str, str], x509.Certificate],
) -> None:
    for name, published in AWS_THUMBPRINTS.items():
        certificate = roots[name]
        assert certificate.fingerprint(hashes.SHA1()).hex().startswith(published), name  # noqa: S303
        valid_from, valid_till = AWS_VALIDITY[name]
        assert certificate.not_valid_before_utc == dt.datetime.fromisoformat(valid_from), name
        assert certificate.not_valid_after_utc == dt.datetime.fromisoformat(valid_till), name


def test_provenance_note_lists_exactly_the_shipped_fingerprints_and_regions(shipped: list[x509.Certificate]) -> None:
    note = NOTE.read_text(encoding="utf-8")
    generated = note[note.index(rds_ca_bundle.NOTE_BEGIN) : note.index(rds_ca_bundle.NOTE_END)]
    listed = set(re.findall(r"`([0-9a-f]{64})`", generated.split("| region |", 1)[1]))
    assert listed == {certificate.fingerprint(hashes.SHA256()).hex() for certificate in shipped}
    shipped_line = next(line for line in generated.splitlines() if line.startswith("- Shipped:"))
    assert shipped_line.split(": ", 2)[2].split(", ") == sorted(EXPECTED_ROOTS)


def test_rds_ca_bundle_path_in_source_tree_is_the_shipped_file() -> None:
    assert tls.rds_ca_bundle_path().resolve() == SHIPPED


def test_rds_ca_bundle_path_in_layer_layout_is_python_certs(tmp_path: Path) -> None:
    # The layer's Makefile copies rotation_core/ and certs/ side by side into python/ (/opt/python in Lambda).
    python = tmp_path / "python"
    python.mkdir()
    shutil.copytree(LAYER / "rotation_core", python / "rotation_core")
    shutil.copytree(LAYER / "certs", python / "certs")
    found = subprocess.run(
        [sys.executable, "-c", "from rotation_core.engines import tls; print(tls.rds_ca_bundle_path())"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(python)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found) == python / "certs" / "rds-global-bundle.pem"
    assert Path(found).is_file()


# --- the default DB_CA_BUNDLE ----------------------------------------------------------------------------


@pytest.fixture
def combined_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory combined bundles go to, with this process's cache of them emptied."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(tls, "_combined_bundles", {})
    return folder


@pytest.fixture
def system_ca() -> trustme.CA:
    """Stands in for a public CA of the runtime's system bundle."""
    return trustme.CA(organization_name="Stand-in System CA")


@pytest.fixture
def system_bundle(tmp_path: Path, system_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "system-ca-bundle.crt"
    system_ca.cert_pem.write_to_path(str(path))
    monkeypatch.setattr(tls, "SYSTEM_CA_BUNDLES", (str(tmp_path / "absent.crt"), str(path)))
    return path


def test_resolve_ca_bundle_unset_joins_system_then_rds_certificates(combined_dir: Path, system_bundle: Path) -> None:
    combined = Path(tls.resolve_ca_bundle(None))
    assert combined.parent == combined_dir
    assert combined.name.startswith(tls.COMBINED_BUNDLE_PREFIX)
    assert der(load(combined)) == der(load(system_bundle)) + der(load(SHIPPED))


def test_resolve_ca_bundle_unset_holds_the_real_system_bundle_and_rds(combined_dir: Path) -> None:
    system = next((Path(path) for path in tls.SYSTEM_CA_BUNDLES if Path(path).is_file()), None)
    if system is None:
        pytest.skip("this machine has none of the system CA bundles tls.py knows")
    # Compared as PEM text: some system roots (serial number 0) draw deprecation warnings from cryptography.
    held = set(pem_blocks(Path(tls.resolve_ca_bundle(None))))
    assert set(pem_blocks(system)) <= held
    assert set(pem_blocks(SHIPPED)) <= held


def test_resolve_ca_bundle_unset_file_is_private_and_reused(combined_dir: Path, system_bundle: Path) -> None:
    first = tls.resolve_ca_bundle(None)
    assert stat.S_IMODE(Path(first).stat().st_mode) == 0o600
    assert tls.resolve_ca_bundle(None) == first
    assert list(combined_dir.iterdir()) == [Path(first)]


def test_resolve_ca_bundle_unset_deleted_file_is_written_again(combined_dir: Path, system_bundle: Path) -> None:
    first = Path(tls.resolve_ca_bundle(None))
    content = first.read_bytes()
    first.unlink()
    again = Path(tls.resolve_ca_bundle(None))
    assert again.read_bytes() == content


def test_resolve_ca_bundle_unset_new_system_content_gets_a_new_file(combined_dir: Path, system_bundle: Path) -> None:
    first = tls.resolve_ca_bundle(None)
    trustme.CA().cert_pem.write_to_path(str(system_bundle))
    second = tls.resolve_ca_bundle(None)
    assert second != first
    assert der(load(Path(second)))[0] == der(load(system_bundle))[0]


def test_resolve_ca_bundle_set_returns_that_file_only(combined_dir: Path, system_bundle: Path, tmp_path: Path) -> None:
    configured = tmp_path / "own-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(configured))
    assert tls.resolve_ca_bundle(str(configured)) == str(configured)
    assert list(combined_dir.iterdir()) == []


def test_resolve_ca_bundle_set_missing_file_raises_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DB_CA_BUNDLE names a file that does not exist"):
        tls.resolve_ca_bundle(str(tmp_path / "missing.pem"))


@pytest.mark.parametrize(
    ("missing", "message"),
    [("rds_bundle", "RDS CA bundle is missing from the layer"), ("system_bundle", "no system CA bundle was found")],
    ids=["rds_bundle", "system_bundle"],
)
def test_resolve_ca_bundle_unset_missing_bundle_raises_configuration_error(
    missing: str, message: str, combined_dir: Path, system_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if missing == "rds_bundle":
        monkeypatch.setattr(tls, "rds_ca_bundle_path", lambda: tmp_path / "certs" / tls.RDS_CA_BUNDLE_NAME)
    else:  # no system bundle at any of the paths searched
        monkeypatch.setattr(tls, "SYSTEM_CA_BUNDLES", (str(tmp_path / "absent.crt"),))
    with pytest.raises(ConfigurationError, match=message) as raised:
        tls.resolve_ca_bundle(None)
    assert "DB_CA_BUNDLE" in raised.value.message


def test_resolve_ca_bundle_unset_unwritable_tempdir_raises_configuration_error(
    system_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "_combined_bundles", {})
    # Undone inside the test: pytest's own teardown needs a working temporary directory.
    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
        with pytest.raises(ConfigurationError) as raised:
            tls.resolve_ca_bundle(None)
    assert "could not create the combined CA bundle" in raised.value.message
    assert "DB_CA_BUNDLE" in raised.value.message


# --- a TLS handshake with the resolved bundle (memory buffers, no sockets) -------------------------------


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str) -> None:
    """Run a TLS handshake between two contexts over memory buffers; raises what the client raises."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(to_client, to_server, server_hostname=host)
    server_side = server.wrap_bio(to_server, to_client, server_side=True)
    client_done = server_done = False
    for _ in range(20):
        if not client_done:
            try:
                client_side.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        if not server_done:
            try:
                server_side.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                server_done = True  # the client's alert; the client's own error is what the test wants
        if client_done and server_done:
            return
    raise AssertionError("the handshake did not finish")


@pytest.fixture
def test_ca_server() -> ssl.SSLContext:
    """A database server whose certificate is signed by a CA nobody trusts by default."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA(organization_name="Test CA").issue_cert("db.example.test").configure_cert(context)
    return context


def test_tls_handshake_test_ca_server_with_default_bundle_is_refused(
    combined_dir: Path, system_bundle: Path, test_ca_server: ssl.SSLContext
) -> None:
    client = _tls_context(TlsMode.VERIFY_FULL, tls.resolve_ca_bundle(None))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        handshake(client, test_ca_server, "db.example.test")


def test_tls_handshake_system_ca_server_with_default_bundle_is_accepted(
    combined_dir: Path, system_bundle: Path, system_ca: trustme.CA
) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    system_ca.issue_cert("db.example.test").configure_cert(server)
    handshake(_tls_context(TlsMode.VERIFY_FULL, tls.resolve_ca_bundle(None)), server, "db.example.test")


def test_tls_handshake_test_ca_server_with_db_ca_bundle_set_is_accepted(tmp_path: Path) -> None:
    ca = trustme.CA(organization_name="Test CA")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("db.example.test").configure_cert(server)
    configured = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(configured))
    handshake(_tls_context(TlsMode.VERIFY_FULL, tls.resolve_ca_bundle(str(configured))), server, "db.example.test")


# --- make rds-ca-bundle ------------------------------------------------------------------------------------


@pytest.fixture
def committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Copies of the committed bundle and note that the refresh tool writes to instead of the real ones."""
    folder = tmp_path / "certs"
    folder.mkdir()
    bundle, note = folder / SHIPPED.name, folder / NOTE.name
    bundle.write_bytes(SHIPPED.read_bytes())
    note.write_bytes(NOTE.read_bytes())
    monkeypatch.setattr(rds_ca_bundle, "BUNDLE", bundle)
    monkeypatch.setattr(rds_ca_bundle, "NOTE", note)
    return bundle, note


def test_rds_ca_bundle_refresh_offline_fails_and_leaves_files_unchanged(
    committed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def offline(*_args: Any, **_kwargs: Any) -> Any:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert rds_ca_bundle.main([]) == 1
    error = capfd.readouterr().err
    assert f"could not download {rds_ca_bundle.GLOBAL_BUNDLE_URL}" in error
    assert "is unchanged" in error
    bundle, note = committed
    assert (bundle.read_bytes(), note.read_bytes()) == (SHIPPED.read_bytes(), NOTE.read_bytes())
    assert sorted(path.name for path in bundle.parent.iterdir()) == sorted([bundle.name, note.name])


def test_rds_ca_bundle_refresh_losing_a_committed_root_fails_and_leaves_files_unchanged(
    committed: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blocks = pem_blocks(SHIPPED)
    smaller = tmp_path / "smaller.pem"
    smaller.write_text("\n".join(blocks[:-1]) + "\n")
    assert rds_ca_bundle.main(["--from-file", str(smaller)]) == 1
    assert "lacks roots the committed one holds" in capfd.readouterr().err
    bundle, note = committed
    assert (bundle.read_bytes(), note.read_bytes()) == (SHIPPED.read_bytes(), NOTE.read_bytes())


def test_rds_ca_bundle_refresh_not_pem_fails_and_leaves_files_unchanged(
    committed: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "captive-portal.html"
    page.write_text("<html>Sign in to the Wi-Fi</html>")
    assert rds_ca_bundle.main(["--from-file", str(page)]) == 1
    assert "does not parse as PEM certificates" in capfd.readouterr().err
    bundle, _note = committed
    assert bundle.read_bytes() == SHIPPED.read_bytes()


def test_rds_ca_bundle_refresh_same_roots_rewrites_only_the_note_header(
    committed: tuple[Path, Path], tmp_path: Path
) -> None:
    intermediate = trustme.CA().create_child_ca()
    source = tmp_path / "download.pem"
    source.write_bytes(SHIPPED.read_bytes() + intermediate.cert_pem.bytes())
    assert rds_ca_bundle.main(["--from-file", str(source), "--source", "a test download"]) == 0
    bundle, note = committed
    assert bundle.read_bytes() == SHIPPED.read_bytes()
    text = note.read_text(encoding="utf-8")
    assert "- Source: a test download" in text
    assert f"- Retrieved: {dt.datetime.now(dt.UTC).date().isoformat()}" in text
    assert "intermediate, not a root" in text
    hand_written = NOTE.read_text(encoding="utf-8").split(rds_ca_bundle.NOTE_BEGIN)[0]
    assert text.split(rds_ca_bundle.NOTE_BEGIN)[0] == hand_written


def test_rds_ca_bundle_select_after_2061_refuses_regions_without_rsa2048_root(
    shipped: list[x509.Certificate],
) -> None:
    with pytest.raises(rds_ca_bundle.BundleError, match="no rds-ca-rsa2048-g1 root"):
        rds_ca_bundle.select(shipped, dt.datetime(2062, 6, 1, tzinfo=dt.UTC))
