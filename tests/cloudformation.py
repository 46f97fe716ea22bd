"""Reading CloudFormation templates in tests: YAML whose short forms (!Ref, !Sub, !GetAtt ...) become long forms.

The reader lives in the release tooling (:mod:`rotation_release.cfn`), which the generated docs use too.
"""

from __future__ import annotations

from rotation_release.cfn import CloudFormationLoader, load, loads

__all__ = ["CloudFormationLoader", "load", "loads"]
