"""IVR: YAML flows, their loader and linter, a sans-IO interpreter, the digit
timing model and an offline simulator. See docs/ivr.md.

Talks to a call only through ``ivr.commands``; never imports ``signaling``,
``media`` or ``switchboard``.
"""
