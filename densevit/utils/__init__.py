"""Utilities that sit outside the model (benchmark helpers, ...).

Deliberately empty: ``densevit.utils.benchmark*`` pull in torch-heavy code and
are imported by the tools that need them, not on ``import densevit``.
"""
