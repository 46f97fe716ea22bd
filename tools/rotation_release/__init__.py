"""Release tooling: the version, the SAR metadata, the release artifacts, their SBOM and the workflow checks.

Never shipped (like :mod:`rotation_local`). ``python -m rotation_release --help`` lists the commands;
``make release-artifacts`` (through ``.ci/template-checks.sh release``) runs them for a release.
"""
