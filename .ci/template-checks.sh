#!/usr/bin/env bash
# Template, build and supply-chain checks, all offline once the venvs exist (PyPI is needed only to
# create them). Called by .ci/run; run it by hand the same way.
#
#   .ci/template-checks.sh          every check below, `sam build` (x86_64) into .aws-sam/build, then the
#                                   release files in dist/ and their checks
#   .ci/template-checks.sh build    only `sam build` and the Python 3.13 runtime stand-in (.venv-py313),
#                                   what tests/integration/test_built_artifacts.py needs
#   .ci/template-checks.sh release  `make release-artifacts`: both builds (x86_64 reused from
#                                   .aws-sam/build, arm64 into .aws-sam/arm64/build), the release files in
#                                   dist/ (zips, templates, SBOM, SHA256SUMS) and their checks; publishes nothing
#   .ci/template-checks.sh deploy   `make deploy`: `sam build` for the Architecture samconfig.toml gives the
#                                   environment $CONFIG_ENV (default: default) into .aws-sam/deploy-<env>/build, then
#                                   `sam deploy --config-env <env>` of exactly that build ($DEPLOY_ARGS added,
#                                   e.g. --guided); `deploy-build` (`make deploy-build`) stops after the build
#
# Every build's template is pinned to the architecture of its compiled files (rotation_release pin-build):
# a `sam deploy` of it with the other architecture fails before it changes anything.
#
# Venvs (all gitignored by .venv*/), each installed from a hash lock (pip --require-hashes): .venv-sam
# (requirements-sam.lock: aws-sam-cli, cfn-lint, detect-secrets), .venv-scan (requirements-scan.lock:
# checkov, check-jsonschema, zizmor, bandit: they conflict with aws-sam-cli), .venv-py313 (boto3 and its
# dependencies only, from requirements-dev.lock, on Python 3.13: the Lambda runtime's view, so the built
# artifacts must bring everything else).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
MODE=${1:-all}
export SAM_CLI_TELEMETRY=0
export SAM_CLI_POLL_DELAY=0
failed=()
started=$(date +%s)

say() { printf 'template-checks: %s\n' "$*" >&2; }

# venv DIR LOCK PYTHON: create DIR and install LOCK (every package pinned with hashes) once, again
# when it changes. pip itself first, from requirements-pip.lock (the pip of Python 3.11 cannot install
# the tool locks with --require-hashes).
venv() {
  local dir=$1 requirements=$2 python=$3 stamp want
  stamp="$dir/.requirements.sha"
  want=$( (cat requirements-pip.lock "$requirements"; "$python" --version) | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  say "installing $requirements (hash-checked) into $dir"
  rm -rf "$dir"
  if "$python" -m venv "$dir" &&
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements-pip.lock \
      >"$dir/install.log" 2>&1 &&
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$requirements" \
      >>"$dir/install.log" 2>&1; then
    echo "$want" >"$stamp"
  else
    grep -v 'is ignored: it is neither a file nor a directory' "$dir/install.log" | tail -20 >&2
    return 1
  fi
}

# run NAME COMMAND...: time a check and remember whether it failed.
run() {
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  say "--- $name"
  "$@"
  rc=$?
  say "--- $name: $([ $rc = 0 ] && echo ok || echo "FAILED ($rc)") in $(($(date +%s) - t0))s"
  [ $rc = 0 ] || failed+=("$name")
}

# What the Lambda Python runtime provides besides the standard library: boto3 and its dependencies.
RUNTIME_PACKAGES="boto3 botocore jmespath python-dateutil s3transfer six urllib3"

# tools_python ARGS...: the release tooling (tools/rotation_release), on .venv-sam's Python (PyYAML).
tools_python() {
  PYTHONPATH="$PWD/layers/rotation_core:$PWD/tools" .venv-sam/bin/python "$@"
}

find_python313() {
  local candidates=() prefix version
  if command -v pyenv >/dev/null 2>&1; then
    for version in 3.13.0 3.13; do
      prefix=$(pyenv prefix "$version" 2>/dev/null) && candidates+=("$prefix/bin/python3.13")
    done
  fi
  command -v python3.13 >/dev/null 2>&1 && candidates+=("$(command -v python3.13)")
  candidates+=(/usr/local/bin/python3.13 /usr/bin/python3.13)
  for candidate in "${candidates[@]}"; do
    # A pyenv shim exists on PATH even when it cannot run: try each one.
    if [ -x "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# sam_build [ARCH BUILD_DIR]: `sam build` for ARCH (default x86_64 into .aws-sam/build, which the
# built-artifact tests run; the release's arm64 build goes to .aws-sam/arm64/build). Each build has a
# parent folder of its own: sam build keeps what its cache holds in build.toml beside the build folder,
# and two builds sharing that file took each other's cache as their own (an arm64 build that kept the
# layer's code of an earlier commit).
sam_build() {
  local arch=${1:-x86_64} build_dir=${2:-.aws-sam/build} python313 log
  log="$(dirname "$build_dir")/build-$arch.log"
  mkdir -p "$(dirname "$build_dir")"
  if ! python313=$(find_python313); then
    say "no python3.13 found (PATH, pyenv, /usr/local/bin): sam build needs one for the python3.13 runtime."
    say "install CPython 3.13 (e.g. 'pyenv install 3.13.0') and run this again"
    return 1
  fi
  say "python3.13 for sam build: $python313"
  # The Lambda runtime's stand-in: Python 3.13 with boto3 (and what boto3 needs) and nothing else, at
  # the versions and hashes of requirements-dev.lock.
  tools_python -m rotation_release lock-subset requirements-dev.lock $RUNTIME_PACKAGES \
    >.aws-sam/runtime-requirements.txt || return 1
  venv .venv-py313 .aws-sam/runtime-requirements.txt "$python313" || return 1
  PATH="$(dirname "$python313"):$PATH" .venv-sam/bin/sam build --cached --cache-dir "$(dirname "$build_dir")/cache-$arch" \
    --build-dir "$build_dir" --parameter-overrides "Architecture=$arch" >"$log" 2>&1 ||
    { tail -40 "$log" >&2; return 1; }
  grep -E 'Build Succeeded' "$log" >&2
  tools_python -m rotation_release pin-build "$build_dir" --architecture "$arch" || return 1
  # Sizes of what would be uploaded (zipped) and unpacked on Lambda.
  (cd "$build_dir" && for dir in */; do
    printf '%-36s %6s unzipped %6s zipped\n' "${dir%/}" "$(du -sh "$dir" | cut -f1)" \
      "$(cd "$dir" && python3 -c 'import io,os,sys,zipfile
b=io.BytesIO(); z=zipfile.ZipFile(b,"w",zipfile.ZIP_DEFLATED)
[z.write(os.path.join(r,f)) for r,_,fs in os.walk(".") for f in fs]; z.close(); print(f"{len(b.getvalue())/1024:.0f}K")')"
  done) >&2
}

EXAMPLES="examples/attach-rotation.yaml examples/deploy-from-sar.yaml"

template_checks() {
  local out=.aws-sam/checks example
  mkdir -p "$out"
  run "sam validate --lint" .venv-sam/bin/sam validate --lint --template template.yaml
  for example in $EXAMPLES; do
    run "sam validate --lint $example" .venv-sam/bin/sam validate --lint --template "$example"
  done
  run "cfn-lint" .venv-sam/bin/cfn-lint template.yaml $EXAMPLES
  run "checkov (template translated to CloudFormation, and the examples)" checkov_all "$out"
  run "SAR metadata, version, changelog (template.yaml)" tools_python -m rotation_release check-metadata
  run "detect-secrets (reviewed baseline)" detect_secrets_check "$out"
  run "GitHub workflows (schema, zizmor, pinning)" workflows_check
  run "bandit (the code that ships: layers/, functions/)" .venv-scan/bin/bandit -q -r layers functions
}

checkov_all() {
  local out=$1 example files=()
  .venv-sam/bin/python .ci/sam_translate.py template.yaml "$out/template.json" || return 1
  files+=(--file "$out/template.json")
  for example in $EXAMPLES; do
    cp "$example" "$out/$(basename "$example")"
    files+=(--file "$out/$(basename "$example")")
  done
  .venv-scan/bin/checkov --quiet --compact --skip-download --framework cloudformation "${files[@]}"
}

# The release: the arm64 build beside the tested x86_64 one, then the files of dist/.
release_artifacts() {
  tools_python -m rotation_release artifacts --build x86_64=.aws-sam/build \
    --build arm64=.aws-sam/arm64/build --dist dist
}

# The release templates are what `sam package` / `sam publish` read: the same checks as template.yaml.
release_checks() {
  local template ok=0
  for template in dist/*.template.yaml; do
    .venv-sam/bin/sam validate --lint --template "$template" >/dev/null || { echo "sam validate: $template" >&2; ok=1; }
  done
  .venv-sam/bin/cfn-lint dist/*.template.yaml || ok=1
  tools_python -m rotation_release check-metadata --dist dist || ok=1
  (cd dist && sha256sum --quiet -c SHA256SUMS) || ok=1
  return $ok
}

# New findings (not in the baseline) or findings not marked as reviewed false positives fail.
detect_secrets_check() {
  local out=$1
  cp .secrets.baseline "$out/secrets.baseline"
  .venv-sam/bin/detect-secrets scan --all-files --baseline "$out/secrets.baseline" || return 1
  .venv-sam/bin/python - "$out/secrets.baseline" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
unreviewed = [(path, r["line_number"], r["type"]) for path, items in results.items() for r in items
              if r.get("is_secret") is not False]
for path, line, kind in unreviewed:
    print(f"detect-secrets: {path}:{line}: {kind} is not a reviewed false positive in .secrets.baseline")
print(f"detect-secrets: {sum(len(i) for i in results.values())} findings, {len(unreviewed)} not reviewed")
sys.exit(1 if unreviewed else 0)
PY
}

workflows_check() {
  .venv-scan/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml &&
    .venv-scan/bin/zizmor --offline --no-progress .github/workflows &&
    tools_python -m rotation_release check-workflows
}

# Deploy from this clone: the architecture is the one `sam deploy --config-env ENV` will deploy with,
# read from samconfig.toml, and the build is made for it (and pinned to it) in its own folder.
deploy_from_clone() {
  local env=${CONFIG_ENV:-default} arch build_dir
  arch=$(tools_python -m rotation_release architecture --config-env "$env") || return 1
  build_dir=.aws-sam/deploy-$env/build
  say "environment $env deploys Architecture=$arch (samconfig.toml): building for it into $build_dir"
  sam_build "$arch" "$build_dir" || return 1
  [ "$MODE" = deploy ] || return 0
  # shellcheck disable=SC2086 # DEPLOY_ARGS holds several options
  .venv-sam/bin/sam deploy --config-env "$env" --template-file "$build_dir/template.yaml" ${DEPLOY_ARGS:-}
}

mkdir -p .aws-sam
say "setting up venvs (cached after the first run)"
run "venv .venv-sam" venv .venv-sam requirements-sam.lock "$PYTHON"
if [ "$MODE" = deploy ] || [ "$MODE" = deploy-build ]; then
  run "$MODE from this clone (sam build of the architecture samconfig.toml deploys)" deploy_from_clone
else
  if [ "$MODE" = all ]; then
    run "venv .venv-scan" venv .venv-scan requirements-scan.lock "$PYTHON"
    template_checks
  fi
  before_builds=${#failed[@]}
  run "sam build (python3.13, x86_64)" sam_build x86_64 .aws-sam/build
  if [ "$MODE" = all ] || [ "$MODE" = release ]; then
    run "sam build (python3.13, arm64)" sam_build arm64 .aws-sam/arm64/build
    if [ ${#failed[@]} = "$before_builds" ]; then # both builds exist
      run "release files (dist/)" release_artifacts
      run "release templates (sam validate --lint, cfn-lint, SAR metadata) and SHA256SUMS" release_checks
    fi
  fi
fi

say "total $(($(date +%s) - started))s"
if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED: ${failed[*]}"
  exit 1
fi
say "all checks passed"
