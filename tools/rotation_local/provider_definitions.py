"""The providers' published API definitions, as small extracts, and the contract the fakes and providers are held to.

Every operation a provider of ``rotation_core.providers`` sends (and the fake of
:mod:`rotation_local.fake_providers` answers) is listed in :data:`SOURCES` with the official OpenAPI document it
comes from. ``python -m rotation_local.provider_definitions`` downloads those documents (the newest commit of
each repository, unless pinned), keeps only the listed operations with every ``$ref`` resolved and the prose
(descriptions, examples) left out, and writes one extract per provider into ``definitions/`` next to this
module, with the repository, commit, file and operationId of each operation. Datadog's extract also carries
answers recorded from the real API (the client's test cassettes). Offline it fails and changes nothing.

:class:`Contract` checks one exchange against an extract: the path and method, the path and query parameters,
the credential the security scheme asks for, the request body (required and read-only fields, with OpenAPI
3.0's write rules) and the answer (a declared status, its body with the read rules). Its messages name
fields and schema keywords, never a value: a key can be part of what is checked.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

DEFINITIONS = Path(__file__).resolve().parent / "definitions"
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
#: Keys of a schema or operation that hold prose or sample data, never shape: left out of the extracts.
PROSE = frozenset({"description", "summary", "example", "examples", "externalDocs", "title", "deprecated"})
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class SourceFile:
    """One published definition file and the operations taken from it."""

    repository: str  # owner/name on GitHub
    path: str  # the file inside the repository
    operations: tuple[tuple[str, str], ...]  # (METHOD, path template), as the file spells the path
    branch: str = "main"


@dataclass(frozen=True)
class RecordedFile:
    """Answers recorded from the real API (a client's test cassette, VCR format)."""

    repository: str
    path: str
    branch: str = "master"


@dataclass(frozen=True)
class ProviderSources:
    provider: str
    files: tuple[SourceFile, ...]
    recorded: tuple[RecordedFile, ...] = ()


_DD_CASSETTES = "tests/{v}/cassettes/test_scenarios/test_{name}.yaml"
SOURCES: dict[str, ProviderSources] = {
    sources.provider: sources
    for sources in (
        ProviderSources(
            "datadog",
            (
                SourceFile(
                    "DataDog/datadog-api-client-python",
                    ".generator/schemas/v2/openapi.yaml",
                    (
                        ("POST", "/api/v2/api_keys"),
                        ("GET", "/api/v2/api_keys"),
                        ("GET", "/api/v2/api_keys/{api_key_id}"),
                        ("DELETE", "/api/v2/api_keys/{api_key_id}"),
                    ),
                    branch="master",
                ),
                SourceFile(
                    "DataDog/datadog-api-client-python",
                    ".generator/schemas/v1/openapi.yaml",
                    (("GET", "/api/v1/validate"),),
                    branch="master",
                ),
            ),
            tuple(
                RecordedFile("DataDog/datadog-api-client-python", _DD_CASSETTES.format(v=version, name=name))
                for version, name in (
                    ("v2", "create_an_api_key_returns_created_response"),
                    ("v2", "get_all_api_keys_returns_ok_response"),
                    ("v2", "get_api_key_returns_ok_response"),
                    ("v2", "get_api_key_returns_not_found_response"),
                    ("v2", "delete_an_api_key_returns_no_content_response"),
                    ("v1", "validate_api_key_returns_ok_response"),
                    ("v1", "validate_api_key_returns_forbidden_response"),
                )
            ),
        ),
        ProviderSources(
            "sendgrid",
            (
                SourceFile(
                    "twilio/sendgrid-oai",
                    "spec/json/tsg_api_keys_v3.json",
                    (
                        ("POST", "/v3/api_keys"),
                        ("GET", "/v3/api_keys"),
                        ("GET", "/v3/api_keys/{api_key_id}"),
                        ("DELETE", "/v3/api_keys/{api_key_id}"),
                    ),
                ),
                SourceFile("twilio/sendgrid-oai", "spec/json/tsg_scopes_v3.json", (("GET", "/v3/scopes"),)),
            ),
        ),
        ProviderSources(
            "twilio",
            (
                SourceFile(
                    "twilio/twilio-oai",
                    "spec/json/twilio_iam_v1.json",
                    (
                        ("POST", "/v1/Keys"),
                        ("GET", "/v1/Keys"),
                        ("GET", "/v1/Keys/{Sid}"),
                        ("DELETE", "/v1/Keys/{Sid}"),
                    ),
                ),
                SourceFile(
                    "twilio/twilio-oai",
                    "spec/json/twilio_api_v2010.json",
                    (
                        ("GET", "/2010-04-01/Accounts/{AccountSid}/Applications.json"),
                        ("GET", "/2010-04-01/Accounts/{AccountSid}/Messages.json"),
                    ),
                ),
            ),
        ),
        ProviderSources(
            "cloudflare",
            (
                SourceFile(
                    "cloudflare/api-schemas",
                    "openapi.json",
                    (
                        ("POST", "/user/tokens"),
                        ("GET", "/user/tokens"),
                        ("GET", "/user/tokens/verify"),
                        ("GET", "/user/tokens/{token_id}"),
                        ("DELETE", "/user/tokens/{token_id}"),
                    ),
                ),
            ),
        ),
    )
}


@dataclass(frozen=True)
class Correction:
    """A part of an extracted operation that contradicts itself or another official source, and its fix.

    ``remove``: the keyword to remove from the object ``pointer`` names; ``keep``: the index of the
    ``allOf`` branch of that object that replaces it. Applied when the extract is built and recorded in it,
    with the reason; one that no longer applies (the definition changed upstream) is reported and skipped.
    """

    operation_id: str
    pointer: str  # JSON pointer into the extracted operation
    reason: str
    remove: str | None = None
    keep: int | None = None


_CF_4XX = "/responses/4XX/content/application~1json/schema"
_CF_4XX_REASON = (
    "the 4XX answer is declared as allOf the operation's success envelope (success: enum [true]) and the "
    "failure envelope (success: enum [false]): no answer can satisfy both; the failure envelope "
    "(iam_api-response-common-failure) is the shape of a failure"
)
CORRECTIONS: dict[str, tuple[Correction, ...]] = {
    "cloudflare": (
        Correction(
            "user-api-tokens-create-token",
            "/requestBody/content/application~1json/schema/properties/policies/items/oneOf/0/properties/"
            "permission_groups/items/properties/id",
            "the create payload requires each permission group's id (the same schema lists it as required) and "
            "Cloudflare's Python SDK, generated from this definition, sends it as a required field: "
            "cloudflare/cloudflare-python@ac1ae1cb4fe55b6b9493500d82d7b5267da3535f "
            "src/cloudflare/types/shared_params/token_policy.py (PermissionGroup.id: Required[str])",
            remove="readOnly",
        ),
        *(
            Correction(operation, _CF_4XX, _CF_4XX_REASON, keep=1)
            for operation in (
                "user-api-tokens-create-token",
                "user-api-tokens-list-tokens",
                "user-api-tokens-verify-token",
                "user-api-tokens-token-details",
                "user-api-tokens-delete-token",
            )
        ),
    ),
}


class DefinitionError(Exception):
    """A definition could not be read or does not hold what the extract needs; the message says which."""


# --- extraction ----------------------------------------------------------------------------------------


_MISSING = object()


def walk(node: Any, pointer: str) -> Any:
    """What the JSON pointer ``pointer`` (``/a/0/b``) names in ``node``; ``_MISSING`` when nothing."""
    for raw in pointer.strip("/").split("/") if pointer.strip("/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _pointer(document: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise DefinitionError(f"external $ref {ref!r} is not supported")
    node = walk(document, ref[1:])
    if node is _MISSING:
        raise DefinitionError(f"$ref {ref!r} does not resolve")
    return node


#: Keywords whose value maps names the definition chose (fields, responses, media types) to their objects.
NAMED_MAPS = frozenset({"properties", "patternProperties", "responses", "content", "headers", "encoding"})


def resolve(document: Mapping[str, Any], node: Any, trail: tuple[str, ...] = (), *, names: bool = False) -> Any:
    """``node`` with every ``$ref`` replaced by what it names and the prose left out.

    A ``$ref`` beside other keywords becomes ``allOf`` of both. A reference cycle becomes ``{"x-cycle":
    <ref>}`` (any value): the operations used here have none. ``names``: ``node`` maps names to objects
    (a ``properties`` map ...), whose keys are kept even when they read like prose (a field ``description``).
    """
    if isinstance(node, list):
        return [resolve(document, item, trail) for item in node]
    if not isinstance(node, Mapping):
        return node
    if names:
        return {key: resolve(document, value, trail) for key, value in node.items()}
    if "$ref" in node:
        ref = str(node["$ref"])
        target: Any = {"x-cycle": ref} if ref in trail else resolve(document, _pointer(document, ref), (*trail, ref))
        rest = _kept(document, node, trail)
        rest.pop("$ref", None)
        return {"allOf": [target, rest]} if rest else target
    return _kept(document, node, trail)


def _kept(document: Mapping[str, Any], node: Mapping[str, Any], trail: tuple[str, ...]) -> dict[str, Any]:
    return {
        key: resolve(document, value, trail, names=key in NAMED_MAPS)
        for key, value in node.items()
        if key != "$ref" and key not in PROSE and not (key.startswith("x-") and key != "x-cycle")
    }


def _server_paths(servers: Any) -> list[str]:
    paths = []
    for server in servers or []:
        url = str(server.get("url", ""))
        paths.append(re.sub(r"^[^/]*//[^/]*", "", url).rstrip("/"))  # the path after scheme://authority
    return sorted(set(paths)) or [""]


def extract_operation(document: Mapping[str, Any], method: str, path: str) -> dict[str, Any]:
    """One operation of ``document``, self-contained: parameters, body, answers, security and servers."""
    path_item = document.get("paths", {}).get(path)
    if not isinstance(path_item, Mapping) or method.lower() not in path_item:
        raise DefinitionError(f"{method} {path} is not in the definition")
    operation = path_item[method.lower()]
    parameters: dict[tuple[str, str], Any] = {}
    for raw in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
        parameter = resolve(document, raw)
        parameters[(parameter["in"], parameter["name"])] = parameter
    security_names = operation.get("security", document.get("security", []))
    schemes = document.get("components", {}).get("securitySchemes", {})
    security = [
        {name: resolve(document, schemes.get(name, {})) for name in requirement} for requirement in security_names
    ]
    body = operation.get("requestBody")
    return {
        "operationId": operation.get("operationId", ""),
        "method": method.upper(),
        "path": path,
        "servers": _server_paths(operation.get("servers") or path_item.get("servers") or document.get("servers")),
        "parameters": sorted(parameters.values(), key=lambda p: (p["in"], p["name"])),
        "requestBody": None if body is None else resolve(document, body),
        "responses": resolve(document, operation.get("responses", {})),
        "security": security,
    }


def recorded_answers(text: str) -> list[dict[str, Any]]:
    """The interactions of a VCR cassette: method, path, query, status and the JSON answer (None if none)."""
    import yaml

    data = yaml.safe_load(text) or {}
    answers = []
    for interaction in data.get("interactions", []):
        request, response = interaction["request"], interaction["response"]
        split = urlsplit(request["uri"])
        body_text = (response.get("body") or {}).get("string") or ""
        try:
            body = json.loads(body_text) if body_text else None
        except ValueError:
            body = None
        answers.append(
            {
                "method": request["method"].upper(),
                "path": split.path,
                "query": dict(parse_qsl(split.query)),
                "status": int(response["status"]["code"]),
                "body": body,
            }
        )
    return answers


def parse_document(name: str, raw: bytes) -> dict[str, Any]:
    if name.endswith((".yaml", ".yml")):
        import yaml

        document = yaml.safe_load(raw)
    else:
        document = json.loads(raw)
    if not isinstance(document, dict) or "paths" not in document:
        raise DefinitionError(f"{name} is not an OpenAPI document")
    return document


# --- fetching ------------------------------------------------------------------------------------------


class Fetcher:
    """Reads a repository's file at a commit: from GitHub, or from a local git directory for that repository."""

    def __init__(self, local: Mapping[str, Path] | None = None, pins: Mapping[str, str] | None = None) -> None:
        self.local = dict(local or {})
        self.pins = dict(pins or {})  # "owner/name:path" -> commit
        self._heads: dict[tuple[str, str], str] = {}

    def commit_for(self, repository: str, path: str, branch: str) -> str:
        pinned = self.pins.get(f"{repository}:{path}")
        if pinned:
            return pinned
        if repository in self.local:
            return self._git(repository, "rev-parse", "HEAD").decode().strip()
        if (repository, branch) not in self._heads:
            url = f"https://api.github.com/repos/{repository}/commits/{branch}"
            data = json.loads(_download(url, accept="application/vnd.github+json"))
            self._heads[(repository, branch)] = str(data["sha"])
        return self._heads[(repository, branch)]

    def read(self, repository: str, path: str, commit: str) -> bytes:
        if repository in self.local:
            return self._git(repository, "show", f"{commit}:{path}")
        return _download(f"https://raw.githubusercontent.com/{repository}/{commit}/{path}")

    def _git(self, repository: str, *args: str) -> bytes:
        result = subprocess.run(
            ["git", "--git-dir", str(self.local[repository]), *args],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise DefinitionError(f"git {' '.join(args)} in {self.local[repository]} failed: {result.stderr.decode()}")
        return result.stdout


def _download(url: str, *, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "secrets-rotation-functions"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (https URLs built here)
            data: bytes = response.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise DefinitionError(f"could not download {url}: {error}") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise DefinitionError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
    return data


def build_extract(sources: ProviderSources, fetcher: Fetcher) -> dict[str, Any]:
    """The extract of one provider (nothing is written)."""
    files = []
    operations = []
    for index, source in enumerate(sources.files):
        commit = fetcher.commit_for(source.repository, source.path, source.branch)
        document = parse_document(source.path, fetcher.read(source.repository, source.path, commit))
        files.append(
            {
                "repository": source.repository,
                "commit": commit,
                "file": source.path,
                "openapi": str(document.get("openapi", "")),
                "info_version": str(document.get("info", {}).get("version", "")),
            }
        )
        for method, path in source.operations:
            operations.append({"source": index, **extract_operation(document, method, path)})
    corrections = [_apply(correction, operations) for correction in CORRECTIONS.get(sources.provider, ())]
    recorded = []
    for record in sources.recorded:
        commit = fetcher.commit_for(record.repository, record.path, record.branch)
        text = fetcher.read(record.repository, record.path, commit).decode("utf-8")
        recorded.append(
            {"repository": record.repository, "commit": commit, "file": record.path, "answers": recorded_answers(text)}
        )
    return {
        "provider": sources.provider,
        "generated_by": "python -m rotation_local.provider_definitions (do not edit by hand)",
        "sources": files,
        "operations": operations,
        "corrections": [c for c in corrections if c is not None],
        "recorded": recorded,
    }


def _apply(correction: Correction, operations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Apply ``correction``; None (and a note on stderr) when the definition no longer has what it fixes."""
    operation = next((op for op in operations if op["operationId"] == correction.operation_id), None)
    node = walk(operation, correction.pointer)
    applies = isinstance(node, dict) and (
        (correction.remove is not None and correction.remove in node)
        or (correction.keep is not None and len(node.get("allOf") or []) > correction.keep)
    )
    if not applies:
        print(
            f"provider-definitions: correction of {correction.operation_id} {correction.pointer} no longer applies "
            "(the definition changed); remove it from CORRECTIONS",
            file=sys.stderr,
        )
        return None
    if correction.remove is not None:
        del node[correction.remove]
        done: dict[str, Any] = {"removed": correction.remove}
    else:
        kept = node["allOf"][correction.keep]
        node.clear()
        node.update(kept)
        done = {"kept_allOf_branch": correction.keep}
    return {"operationId": correction.operation_id, "pointer": correction.pointer, **done, "reason": correction.reason}


def write_extracts(extracts: Mapping[str, Mapping[str, Any]], folder: Path = DEFINITIONS) -> list[Path]:
    """Write every extract, only once all of them were built (a failure earlier leaves the folder as it was)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for provider, extract in extracts.items():
        target = folder / f"{provider}.json"
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(extract, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        temporary.replace(target)
        written.append(target)
    return written


# --- the contract --------------------------------------------------------------------------------------


def load(provider: str, folder: Path = DEFINITIONS) -> dict[str, Any]:
    path = folder / f"{provider}.json"
    try:
        extract: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DefinitionError(f"cannot read {path}: {error}") from None
    return extract


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    servers: tuple[str, ...]
    spec: Mapping[str, Any] = field(repr=False)
    _pattern: re.Pattern[str] = field(repr=False)

    @classmethod
    def from_extract(cls, spec: Mapping[str, Any]) -> Operation:
        template = str(spec["path"])
        pattern = re.escape(template)
        for name in re.findall(r"\{([^{}]+)\}", template):
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{_group(name)}>[^/]+?)")
        return cls(
            operation_id=str(spec["operationId"]),
            method=str(spec["method"]),
            template=template,
            servers=tuple(spec.get("servers") or [""]),
            spec=spec,
            _pattern=re.compile(f"^{pattern}$"),
        )

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.upper() != self.method:
            return None
        for prefix in self.servers:
            if prefix and not path.startswith(prefix + "/"):
                continue
            found = self._pattern.match(path[len(prefix) :])
            if found is not None:
                names = re.findall(r"\{([^{}]+)\}", self.template)
                return {name: unquote(found.group(_group(name))) for name in names}
        return None

    def parameters(self, where: str) -> list[Mapping[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p.get("in") == where]

    def response(self, status: int) -> Mapping[str, Any] | None:
        responses: Mapping[str, Any] = self.spec.get("responses", {})
        for key in (str(status), f"{status // 100}XX", "default"):
            if key in responses:
                return dict(responses[key])
        return None

    @property
    def declares_errors(self) -> bool:
        return any(not str(status).startswith(("1", "2", "3")) for status in self.spec.get("responses", {}))


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


@dataclass
class Exchange:
    """One request and, once answered, its answer, as the checks see them."""

    method: str
    target: str  # path and query
    headers: Mapping[str, str]
    body: bytes = b""
    status: int | None = None
    answer: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


class Contract:
    """What one provider's extract allows, and the checks of an exchange against it."""

    def __init__(self, provider: str, extract: Mapping[str, Any] | None = None, *, strict: bool = True) -> None:
        self.provider = provider
        #: Also refuse fields the definition does not declare (what this project sends, and its fakes answer).
        self.strict = strict
        self.extract = extract if extract is not None else load(provider)
        self.operations = [Operation.from_extract(spec) for spec in self.extract["operations"]]

    def operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        for operation in self.operations:
            params = operation.match(method, path)
            if params is not None:
                return operation, params
        return None

    def by_id(self, operation_id: str) -> Operation:
        return next(op for op in self.operations if op.operation_id == operation_id)

    def source_of(self, operation: Operation) -> Mapping[str, Any]:
        source: Mapping[str, Any] = self.extract["sources"][operation.spec["source"]]
        return source

    def check_request(self, exchange: Exchange) -> tuple[Operation | None, list[str]]:
        """The operation the request is, and what in it the definition does not allow."""
        found = self.operation(exchange.method, exchange.path)
        what = f"{self.provider} {exchange.method} {_shape(exchange.path)}"
        if found is None:
            return None, [f"{what}: no operation of the definition has this method and path"]
        operation, path_params = found
        problems = [f"{operation.operation_id}: {p}" for p in self._request_problems(operation, path_params, exchange)]
        return operation, problems

    def check_response(self, operation: Operation, exchange: Exchange) -> list[str]:  # noqa: PLR0911 (one per case)
        """What in the answer to ``exchange`` the definition does not allow."""
        assert exchange.status is not None
        declared = operation.response(exchange.status)
        name = operation.operation_id
        if declared is None:
            if exchange.status >= 400 and not operation.declares_errors:
                return []  # the definition says nothing about this operation's errors: nothing to hold it to
            return [f"{name}: answered {exchange.status}, which the definition does not declare"]
        content = declared.get("content") or {}
        if not content:
            return [] if not exchange.answer.strip() else [f"{name}: answered {exchange.status} with a body"]
        media = content.get("application/json")
        if media is None:
            return [f"{name}: the {exchange.status} answer is not declared as JSON"]
        try:
            body = json.loads(exchange.answer) if exchange.answer else None
        except ValueError:
            return [f"{name}: the {exchange.status} answer is not JSON"]
        schema = media.get("schema")
        if schema is None:
            return []
        problems = schema_problems(schema, body, read=True)
        if self.strict:
            problems += undeclared_fields(schema, body)
        return [f"{name}: {exchange.status} answer {p}" for p in problems]

    def _request_problems(self, operation: Operation, path_params: Mapping[str, str], exchange: Exchange) -> list[str]:
        problems: list[str] = []
        for parameter in operation.parameters("path"):
            value = path_params.get(parameter["name"])
            problems += [f"path parameter {parameter['name']} {p}" for p in _value_problems(parameter, value)]
        sent = exchange.query
        declared = {p["name"]: p for p in operation.parameters("query")}
        for name, _value in sent:
            if name not in declared:
                problems.append(f"query parameter {name} is not declared")
        for name, parameter in declared.items():
            values = [value for key, value in sent if key == name]
            if not values and parameter.get("required"):
                problems.append(f"required query parameter {name} is missing")
            for value in values:
                problems += [f"query parameter {name} {p}" for p in _value_problems(parameter, value)]
        for parameter in operation.parameters("header"):
            if parameter.get("required") and exchange.header(parameter["name"]) is None:
                problems.append(f"required header {parameter['name']} is missing")
        problems += self._security_problems(operation, exchange)
        problems += _body_problems(operation, exchange, strict=self.strict)
        return problems

    @staticmethod
    def _security_problems(operation: Operation, exchange: Exchange) -> list[str]:
        requirements = operation.spec.get("security") or []
        if not requirements or any(not requirement for requirement in requirements):
            return []  # no credential required (or one alternative requires none)
        for requirement in requirements:
            if all(_credential_present(scheme, exchange) for scheme in requirement.values()):
                return []
        return ["no credential of the kinds the definition's security schemes ask for"]


def _credential_present(scheme: Mapping[str, Any], exchange: Exchange) -> bool:
    if scheme.get("type") == "http":
        authorization = exchange.header("Authorization") or ""
        return authorization.lower().startswith(str(scheme.get("scheme", "")).lower() + " ")
    if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
        return bool(exchange.header(str(scheme.get("name", ""))))
    return False


def _body_problems(operation: Operation, exchange: Exchange, *, strict: bool) -> list[str]:  # noqa: PLR0911
    declared = operation.spec.get("requestBody")
    if declared is None:
        return ["sends a body the definition does not declare"] if exchange.body else []
    if not exchange.body:
        return ["sends no body, which the definition requires"] if declared.get("required") else []
    content_type = (exchange.header("Content-Type") or "").split(";")[0].strip().lower()
    media = (declared.get("content") or {}).get(content_type)
    if media is None:
        return [f"sends a {content_type or 'body without Content-Type'}, which the definition does not declare"]
    if content_type == "application/json":
        try:
            body = json.loads(exchange.body)
        except ValueError:
            return ["sends a body that is not JSON"]
    elif content_type == "application/x-www-form-urlencoded":
        body = dict(parse_qsl(exchange.body.decode("utf-8"), keep_blank_values=True))
    else:
        return []
    schema = media.get("schema")
    if schema is None:
        return []
    problems = schema_problems(schema, body, read=False) + (undeclared_fields(schema, body) if strict else [])
    return [f"request body {p}" for p in problems]


def _value_problems(parameter: Mapping[str, Any], value: str | None) -> list[str]:
    if value is None:
        return ["is missing"] if parameter.get("required") else []
    schema = parameter.get("schema") or {}
    return schema_problems(schema, _coerce(schema, value), read=False)


def _coerce(schema: Mapping[str, Any], text: str) -> Any:
    """A parameter's text as the type its schema declares (what a server would parse it as)."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def schema_problems(schema: Mapping[str, Any], instance: Any, *, read: bool) -> list[str]:
    """Where ``instance`` breaks ``schema`` (OpenAPI 3.0 rules; ``read``: an answer, else a request).

    Messages name the place and the schema's keyword and its value (from the definition), never the
    instance's values.
    """
    from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator

    validator_type = OAS30ReadValidator if read else OAS30WriteValidator
    validator: Any = validator_type(copy.deepcopy(dict(schema)))
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        for leaf in _leaves(error):
            place = "/".join(str(part) for part in leaf.absolute_path) or "(the whole body)"
            rule = leaf.validator_value
            shown = rule if isinstance(rule, str | int | float | bool | list) and len(repr(rule)) < 200 else "..."
            problems.append(f"at {place}: breaks {leaf.validator!r} ({shown!r})")
    return problems


def undeclared_fields(schema: Mapping[str, Any], instance: Any, place: tuple[str, ...] = ()) -> list[str]:
    """Fields of ``instance`` that no (sub)schema at their place declares, where the schema lists its fields.

    OpenAPI objects admit undeclared fields unless ``additionalProperties`` says otherwise; a fake that
    answers one (Cloudflare's ``total_pages``) invents it, so fakes and requests are held to the declared ones.
    """
    schemas = list(_branches(schema))
    problems: list[str] = []
    if isinstance(instance, dict):
        declared: dict[str, list[Any]] = {}
        for branch in schemas:
            for name, sub in (branch.get("properties") or {}).items():
                declared.setdefault(name, []).append(sub)
        listed = any("properties" in branch for branch in schemas)
        open_ended = any(branch.get("additionalProperties") not in (None, False) for branch in schemas) or any(
            branch.get("type") == "object" and not any(k in branch for k in ("properties", "allOf", "anyOf", "oneOf"))
            for branch in schemas
        )  # a branch that is any object (Cloudflare's result: {"type": "object"}) admits every field
        for name, value in instance.items():
            if name in declared:
                problems += undeclared_fields({"allOf": declared[name]}, value, (*place, str(name)))
            elif listed and not open_ended:
                problems.append(f"at {'/'.join((*place, str(name)))}: a field the definition does not declare")
    elif isinstance(instance, list):
        items = [branch["items"] for branch in schemas if isinstance(branch.get("items"), dict)]
        if items:
            for index, value in enumerate(instance):
                problems += undeclared_fields({"allOf": items}, value, (*place, str(index)))
    return problems


def _branches(schema: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(schema, Mapping):
        return
    yield schema
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword) or []:
            yield from _branches(branch)


def _leaves(error: Any) -> Iterator[Any]:
    """The most specific errors under ``error`` (an allOf/oneOf failure says which part failed)."""
    children = list(error.context or [])
    if not children:
        yield error
        return
    for child in children:
        yield from _leaves(child)


def _shape(path: str) -> str:
    """A path for a message: segments that look like identifiers or keys are shown as ``{}``."""
    return "/".join("{}" if len(part) > 12 or any(c.isdigit() for c in part[2:]) else part for part in path.split("/"))


# --- command line --------------------------------------------------------------------------------------


def _pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise DefinitionError(f"{what} must be KEY=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotation_local.provider_definitions", description=__doc__)
    parser.add_argument("provider", nargs="*", help=f"providers to refresh: {', '.join(SOURCES)} (default: all)")
    parser.add_argument(
        "--pin",
        action="append",
        metavar="OWNER/NAME:PATH=COMMIT",
        help="read that file at that commit instead of the newest one (repeatable)",
    )
    parser.add_argument(
        "--git",
        action="append",
        metavar="OWNER/NAME=GIT_DIR",
        help="read that repository from a local git directory instead of GitHub (repeatable; HEAD unless pinned)",
    )
    args = parser.parse_args(argv)
    providers = args.provider or list(SOURCES)
    unknown = sorted(set(providers) - set(SOURCES))
    if unknown:
        parser.error(f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    try:
        fetcher = Fetcher(
            local={repo: Path(path) for repo, path in _pairs(args.git, "--git").items()},
            pins=_pairs(args.pin, "--pin"),
        )
        extracts = {provider: build_extract(SOURCES[provider], fetcher) for provider in providers}
    except (DefinitionError, OSError, ValueError, KeyError) as error:
        print(f"provider-definitions: {error}; nothing was changed in {DEFINITIONS}", file=sys.stderr)
        return 1
    for path in write_extracts(extracts):
        extract = json.loads(path.read_text(encoding="utf-8"))
        commits = ", ".join(f"{s['repository']}@{s['commit'][:12]}:{s['file']}" for s in extract["sources"])
        print(f"{path}: {len(extract['operations'])} operations from {commits}")
    print(f"written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; review the diff, then run the contract tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
