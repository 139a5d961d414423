"""Tests of the ivr package.

While ``tests/`` has no ``__init__.py``, pytest's default import mode puts
``tests/`` first on ``sys.path`` and imports this directory as the top-level
package ``ivr``, shadowing the real one. In that case this package makes itself
the real ``ivr``: real modules first on ``__path__``, real ``__init__`` run here.
"""

from pathlib import Path

if __name__ == "ivr":
    _real = Path(__file__).resolve().parents[2] / "ivr"
    __path__ = [str(_real), *__path__]  # noqa: F821 - set by the import system
    _init = _real / "__init__.py"
    exec(compile(_init.read_text(encoding="utf-8"), str(_init), "exec"))
