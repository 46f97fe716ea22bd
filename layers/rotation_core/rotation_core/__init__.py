"""Shared rotation logic for the Secrets Manager rotation functions (the Lambda layer's package).

Importing it is cheap: drivers, boto3 and the logger are loaded when a step first needs them.
"""

__version__ = "0.2.0"
