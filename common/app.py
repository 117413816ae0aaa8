"""What every command of the project shares, the backends' and compare's alike: bad input is one
line on stderr and exit status 2 before anything is done, and outputs are checked before the
work, not after it (README "When things go wrong" lists the exit statuses).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from absl import app, flags

from common.config import ConfigError
from common.files import WriteFailed

FLAGS = flags.FLAGS


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit status 2, before anything is done."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    try:
        return FLAGS(argv)
    except flags.Error as e:  # several failed validators give several lines
        fail("; ".join(line.strip() for line in str(e).splitlines() if line.strip()))


def check_writable(path: str, flag: str = "--out") -> Path:
    """Fail now, not after the work, if the file cannot be written (leaves no file behind)."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{flag}={path}: is a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=target.parent or ".", prefix=".probe-"):
            pass
    except OSError as e:
        raise ConfigError(f"{flag}={path}: cannot write there ({e.strerror})") from None
    return target


def check_out_dir(path: Path, flag: str = "--out") -> Path:
    """Fail now, not after the work, if `path` cannot become a folder of outputs; creates nothing
    (a refused command leaves no trace)."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{flag}={path}: exists and is not a directory")
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
                pass
        except OSError as e:
            raise ConfigError(f"{flag}={path}: cannot write there ({e.strerror})") from None
        return path
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}={path}: cannot create it ({parent} is not a writable directory)")
    return path


def run_app(main: Callable[[list[str]], None], define: Callable[[], None],
            interrupted: str = "interrupted", may_be_empty: Iterable[str] = ()) -> None:
    """absl's app.run, with the rules every entry point of the project shares:

    - bad flags, stray positional arguments and empty values of the program's own flags
      (`--out ''`, `--cases ''`; except those in `may_be_empty`) are one line, exit status 2,
      before anything runs;
    - an output that cannot be written (disk full, folder gone) is one line naming the file, and
      memory that runs out, or any other I/O failure, one line too: exit status 1;
    - Ctrl-C is the one line `interrupted`, exit status 130.
    """
    before = set(FLAGS)
    define()
    ours = sorted(set(FLAGS) - before - set(may_be_empty))

    def checked_main(argv: list[str]) -> None:
        if len(argv) > 1:
            fail(f"unexpected argument {argv[1]!r} (flags look like --name=value)")
        for name in ours:
            if FLAGS[name].present and FLAGS[name].value in ("", []):
                fail(f"--{name}='': needs a value")
        try:
            main(argv)
        except KeyboardInterrupt:
            print(interrupted, file=sys.stderr)
            sys.exit(130)
        except WriteFailed as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except MemoryError as e:
            print(f"error: out of memory{': ' + str(e) if str(e) else ''}", file=sys.stderr)
            sys.exit(1)
        except OSError as e:  # any other I/O failure the program did not name itself
            print(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
            sys.exit(1)

    app.run(checked_main, flags_parser=parse_flags)


def define_field_flags(fields, defaults, choices: dict[str, tuple[str, ...]], helps: dict[str, str]) -> None:
    """One absl flag per dataclass field, typed and defaulted from `defaults` (an instance):
    choices become enums, tuples lists; what the configs validate is checked there, once."""
    for field in fields:
        name, default = field.name, getattr(defaults, field.name)
        if name in choices:
            flags.DEFINE_enum(name, default, choices[name], helps[name])
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, helps[name])
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, helps[name])
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, helps[name])
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, [str(v) for v in default], helps[name])
        elif isinstance(default, str):
            flags.DEFINE_string(name, default, helps[name])
        else:
            raise TypeError(f"no flag type for config field {name}")


def one_line(e: BaseException) -> str:
    """An exception as one line: frameworks' messages (XLA, CUDA out of memory) run to pages."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")


@contextlib.contextmanager
def training_progress(console, steps: int) -> Iterator[tuple[Any, Any]]:
    """(progress, task): a transient bar over `steps` training steps, with a field `last` for
    the latest eval's line; both workloads' command lines show their runs through it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[last]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        yield progress, progress.add_task("training", total=steps, last="")
