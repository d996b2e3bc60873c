"""What every hashjax command does around its work: one-line errors, quiet logs.

``run_absl(main)`` (``hashjax``, ``python -m hashjax.main``, ``hashjax.encode``) and
``run_argparse(main)`` (``hashjax.search``) turn a user mistake (a bad flag or config
value, a missing or damaged file, ...) into ONE line on stderr naming the problem and
exit status 2. The traceback is shown only on request: ``--traceback`` or the
environment variable ``HASHJAX_TRACEBACK=1``. A non-finite training loss ends with one
line and status 1. Any other exception is a bug and keeps its traceback.

Logs: absl's INFO lines (JAX's platform probing, Orbax's per-save lines) are hidden
unless ``--verbosity``/``-v`` is given; warnings and errors are shown.

This module imports neither JAX nor the data code, so errors caught while parsing
flags and validating a config come back in a fraction of a second.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["USER_ERRORS", "describe", "fail", "run_absl", "run_argparse", "warn",
           "want_traceback"]

TRACEBACK_ENV = "HASHJAX_TRACEBACK"

# Exceptions that mean "the input is wrong" (bad value, missing / unreadable / damaged
# file): one line, exit 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, KeyError)


def want_traceback(argv: Sequence[str] | None = None) -> bool:
  """True with ``--traceback`` in ``argv`` or ``HASHJAX_TRACEBACK`` set (not 0)."""
  argv = sys.argv if argv is None else argv
  env = os.environ.get(TRACEBACK_ENV, "").strip().lower()
  return "--traceback" in argv or env not in ("", "0", "false", "no")


def _chain(exc: BaseException) -> list[BaseException]:
  """``exc`` and its causes, outermost first (a ``from None`` ends the chain)."""
  out: list[BaseException] = []
  while exc is not None and all(exc is not e for e in out):
    out.append(exc)
    exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
  return out


def _innermost(exc: BaseException) -> BaseException:
  return _chain(exc)[-1]


def _squash(text: str) -> str:
  return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe(exc: BaseException, *, innermost: bool = False) -> str:
  """One line saying what went wrong, without a traceback.

  Args:
    exc: the exception.
    innermost: describe the innermost cause of the chain (flag parsing, where
      ml_collections and absl wrap the real error) instead of ``exc`` itself.
  """
  for e in _chain(exc):   # ml_collections: KeyError("'bitz'\nDid you mean ...")
    m = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', str(e))
    if isinstance(e, (KeyError, AttributeError)) and m:
      return f"unknown config field {m.group(2)!r} (did you mean {m.group(1)!r}?)"
  inner = _innermost(exc) if innermost else exc
  if isinstance(inner, SyntaxError):
    return (f"syntax error in {inner.filename}, line {inner.lineno}: {inner.msg}"
            .replace("\n", " "))
  if isinstance(inner, AttributeError) and "get_config" in str(inner):
    return "the config file defines no get_config() function"
  if isinstance(inner, KeyError) and inner.args:
    return f"missing key {inner.args[0]!r}"
  if isinstance(inner, OSError) and inner.filename is not None and inner.strerror:
    kind = type(inner).__name__
    return f"{inner.strerror}: {inner.filename} ({kind})"
  msg = _squash(str(inner))
  if not msg:
    msg = type(inner).__name__
  return msg


def fail(prog: str, message: str, code: int = 2):
  """Prints ``prog: error: message`` (one line) to stderr and exits with ``code``."""
  print(f"{prog}: error: {_squash(message)}", file=sys.stderr)
  sys.exit(code)


def warn(message: str) -> None:
  """One warning line on stderr (``hashjax: warning: ...``)."""
  print(f"hashjax: warning: {_squash(message)}", file=sys.stderr, flush=True)


def _prog(argv: Sequence[str]) -> str:
  name = os.path.basename(argv[0]) if argv else "hashjax"
  if name in ("__main__.py", "main.py", "-c", ""):
    return "hashjax"
  return name.removesuffix(".py")


def _handle(prog: str, exc: BaseException, argv: Sequence[str]) -> None:
  """Exits with one line for user errors / NaN; returns for bugs (caller re-raises)."""
  if want_traceback(argv):
    return
  if isinstance(exc, FloatingPointError):
    fail(prog, describe(exc), code=1)
  if isinstance(exc, USER_ERRORS):
    fail(prog, describe(exc), code=2)


def _quiet_logs(argv: Sequence[str]) -> None:
  """Hides absl INFO lines (JAX backend probing, Orbax saves) unless asked for."""
  if any(a.startswith(("--verbosity", "-v", "--v=")) for a in argv[1:]):
    return
  from absl import logging  # pylint: disable=g-import-not-at-top

  logging.set_verbosity(logging.WARNING)


def _check_config_paths(argv: Sequence[str]) -> None:
  """Fails early (one line) when a ``--config=path[:arg]`` file does not exist."""
  for i, a in enumerate(argv[1:], 1):
    if a == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
    elif a.startswith("--config="):
      value = a.split("=", 1)[1]
    else:
      continue
    path = value.split(":", 1)[0]
    if not os.path.isfile(path):
      what = "is a directory" if os.path.isdir(path) else "does not exist"
      raise FileNotFoundError(f"config file {path} {what} (--config={value}).")


def run_absl(main: Callable[[list[str]], Any], *, key_flags: Sequence[Any] = ()
             ) -> None:
  """``absl.app.run(main)`` with one-line errors (exit 2) and quiet logs.

  Args:
    main: the absl main, ``main(argv)``.
    key_flags: flag holders listed by ``--help`` (a console script's own module is
      not ``__main__``, so absl would list none).
  """
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  argv = list(sys.argv)
  prog = _prog(argv)
  for holder in key_flags:
    flags.FLAGS.register_key_flag_for_module(argv[0], flags.FLAGS[holder.name])
  flags.FLAGS.register_key_flag_for_module(argv[0], flags.FLAGS["traceback"])

  def parse(args):
    try:
      _check_config_paths(args)
      return flags.FLAGS(args)
    except SystemExit as e:   # --help: absl exits 1 after printing it
      if any(a in ("--help", "-h", "--helpfull", "--helpshort", "-?") for a in args):
        sys.exit(0)
      raise e
    except Exception as e:  # pylint: disable=broad-except
      if want_traceback(args):
        raise
      inner, msg = _innermost(e), describe(e, innermost=True)
      if str(e).startswith("flag --") and "parsing config file" not in str(e):
        msg = _squash(str(e))   # names the flag: "flag --config.bits=abc: ..."

      if msg.startswith("missing key") and isinstance(inner, KeyError):
        msg = f"unknown config field {inner.args[0]!r}"
      fail(prog, f"{msg.rstrip('.')} (see --help)")

  def wrapped(args):
    _quiet_logs(argv)
    try:
      return main(args)
    except app.UsageError as e:
      if want_traceback(argv):
        raise
      fail(prog, str(e))
    except Exception as e:  # pylint: disable=broad-except
      _handle(prog, e, argv)
      raise

  app.run(wrapped, flags_parser=parse)


def run_argparse(main: Callable[[list[str]], int], prog: str,
                 argv: Sequence[str] | None = None) -> None:
  """``sys.exit(main(argv))`` with one-line errors (exit 2) and quiet logs."""
  argv = list(sys.argv[1:] if argv is None else argv)
  full = [prog, *argv]
  _quiet_logs(full)
  try:
    code = main([a for a in argv if a != "--traceback"])
  except Exception as e:  # pylint: disable=broad-except
    _handle(prog, e, full)
    raise
  sys.exit(code)


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top

  if "traceback" not in flags.FLAGS:
    flags.DEFINE_bool("traceback", False,
                      "Show the full traceback of an error (or set "
                      f"{TRACEBACK_ENV}=1).")


_define_flags()
