"""Engine components: training hooks and their helpers.

``densevit.engine`` is the registry location of HOOKS (and of loops,
optimizers and schedulers), so importing it registers every hook.
Workarounds of dependency behaviour are fenced in
:mod:`densevit.engine.compat`, with the condition for deleting each.
"""
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .utils import *  # noqa: F401,F403
from .utils import __all__ as _utils_all

__all__ = list(_hooks_all) + list(_utils_all)
