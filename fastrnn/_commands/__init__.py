"""What each ``fastrnn`` command does, once :mod:`fastrnn.cli` has parsed its arguments.

Each handler takes the parsed ``argparse.Namespace`` and returns the exit
status; a problem to report in one line is raised as
:class:`~fastrnn._commands.common.UserError` (or a ValueError/OSError from
the API), which :func:`fastrnn.cli.main` prints.

- :mod:`.common` -- the program's name, the training options, errors, the streams
  (what :mod:`fastrnn.cli` imports from there);
- :mod:`.texts` -- the texts a run trains and validates on, and what a resume reads;
- :mod:`.training` -- ``train``, ``sweep``, ``hello``, ``compile``;
- :mod:`.inference` -- ``sample``, ``eval``.
"""

from fastrnn._commands.inference import evaluate, sample
from fastrnn._commands.training import compile_kernels, hello, hello_world, sweep, train

__all__ = ["evaluate", "sample", "compile_kernels", "hello", "hello_world", "sweep", "train"]
