"""Hydra's composition errors as one line: a misspelled key or a bad override stops Hydra
before the job starts, with a message of several lines and exit code 1; the runner's own bad
input ends in one ``error:`` line and exit code 2. What Hydra writes to stderr is held until
the job starts (then written as it came, and nothing more is held), so that a failure before
it can be told in one line instead."""

from __future__ import annotations

import difflib
import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from runner.store_probe import SECRET_QUERY_KEYS

HYDRA_HINT = "HYDRA_FULL_ERROR"  # Hydra's closing advice, not part of the error


WARNING_LINE = re.compile(r"^\S.*:\d+: \w*Warning: ")  # what ``warnings`` prints
# the password of a URI with credentials: scheme://user:PASSWORD@host (also as Hydra prints
# an override, its colons escaped: scheme\://user\:PASSWORD@host)
URI_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*\\?://[^\s:/@'\"]+:)[^\s@/'\"]+@")
# a token as an http(s) URI's user name (http://TOKEN@host), as store_probe.redact_uri hides
URI_HTTP_TOKEN = re.compile(r"(https?\\?://)[^\s:/@'\"]+:?@", re.IGNORECASE)
# a secret in a URI's query (``?token=...``, ``&api_key=...``), as store_probe.redact_uri hides
URI_QUERY_SECRET = re.compile(
    rf"([?&][\w.-]*(?:{'|'.join(SECRET_QUERY_KEYS)})[\w.-]*\\?=)[^&#\s'\"]+", re.IGNORECASE
)


def redact_credentials(text: str) -> str:
    """``text`` with the password and secret query values of every URI in it replaced by
    ``***``."""
    if "://" not in text:
        return text
    text = URI_HTTP_TOKEN.sub(r"\1***@", URI_PASSWORD.sub(r"\1***@", text))
    return URI_QUERY_SECRET.sub(r"\1***", text)


FILE_MARK = re.compile(r'^\s+in "(?P<file>[^"]+)", line (?P<line>\d+), column (?P<column>\d+)')


def one_line(text: str) -> str:
    """Hydra's error message on one line: its lines joined, a list of available options
    kept on its line (``Available options in 'optimizer': adam, sgd``), a YAML parser's
    file, line and column kept beside what it says, the other indented details (full key,
    object type, the config search path, a traceback's frames), the advice about
    HYDRA_FULL_ERROR and any warning printed before it left out."""
    parts: list[str] = []
    listing: list[str] | None = None  # the indented items of an "Available options" line
    for line in text.splitlines():
        mark = FILE_MARK.match(line)
        if mark and parts:  # where in a config file a parser stopped
            parts[-1] += f" (in {mark['file']}, line {mark['line']}, column {mark['column']})"
            continue
        if line.startswith((" ", "\t")) and line.strip():
            if listing is not None:
                listing.append(line.strip())
            continue
        if line.startswith("Traceback (most recent call last)"):
            continue
        if listing is not None:
            parts[-1] += " " + ", ".join(listing)
            listing = None
        if not line.strip() or HYDRA_HINT in line or WARNING_LINE.match(line):
            continue
        if line.startswith("Config search path"):
            continue
        parts.append(line.strip().rstrip("."))
        if line.startswith("Available options"):
            listing = []
    if listing is not None:
        parts[-1] += " " + ", ".join(listing)
    return "; ".join(parts)


LIST_MERGE = re.compile(
    r"Error merging override \+{0,2}(?P<key>[\w.-]+)=\{.*Cannot merge DictConfig with ListConfig"
)


NOT_IN_STRUCT = re.compile(r"Could not override '(?P<key>[^']+)'.*Key '[^']+' is not in struct")


def with_hint(message: str, argv: Sequence[str] = ()) -> str:
    """Hydra's one line, with what to type instead where Hydra's own words do not say it:
    a search domain over a list setting (convnet's ``filters``) cannot merge into the list;
    a key that is not in the config is compared with those that are (composed from the
    other overrides in ``argv``)."""
    found = LIST_MERGE.search(message)
    if found:
        key = found["key"]
        message += (
            f"; to search a list setting, drop the list and add the domain: "
            f"'~{key}' '+{key}={{choice: [[...], [...]]}}'"
        )
    missing = NOT_IN_STRUCT.search(message)
    if missing and (near := closest_key(_composed_without(missing["key"], argv), missing["key"])):
        message += f"; did you mean {near}?"
    return message


def extra_config_dirs(argv: Sequence[str]) -> list[Path] | None:
    """Config dirs the user adds (--config-dir, hydra.searchpath); None if we cannot tell
    (another provider than file://, an interpolation, a folder that is not there: Hydra
    says)."""
    dirs = given_config_dirs(argv)
    return None if dirs is None or any(not d.is_dir() for d in dirs) else dirs


def given_config_dirs(argv: Sequence[str]) -> list[Path] | None:
    """The folders --config-dir and hydra.searchpath name (file:// only), there or not; None
    if we cannot tell (another provider, an interpolation)."""
    dirs: list[Path] = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(Path(argv[i + 1]))
        elif arg.startswith(("--config-dir=", "-cd=")):
            dirs.append(Path(arg.split("=", 1)[1]))
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            for item in arg.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if not item.startswith("file://") or "${" in item:
                    return None
                dirs.append(Path(item[len("file://") :]))
    return dirs  # Hydra expands no ~


def _composed_without(key: str, argv: Sequence[str]) -> dict[str, Any]:
    """The config the command line composes without its override of ``key`` (and without
    Hydra's own settings and flags), as a plain dict; empty when that does not compose."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from runner import CONF_DIR

    parser = OverridesParser.create()

    def kept(arg: str) -> bool:
        name = arg.lstrip("+~").split("=", 1)[0]
        if "=" not in arg or arg.startswith("-") or name == key or name.startswith("hydra"):
            return False
        try:  # a multirun's sweep (a=1,2) composes no single config: its first would do,
            return not parser.parse_override(arg).is_sweep_override()  # but leave it out
        except Exception:  # noqa: BLE001 - one Hydra will refuse anyway
            return False

    overrides = [arg for arg in argv if kept(arg)]
    extra = extra_config_dirs(argv) or []
    if extra:  # the user's config folders, where their experiment may live
        paths = ",".join(f"file://{d.resolve()}" for d in extra)
        overrides.append(f"hydra.searchpath=[{paths}]")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=_config_name(argv), overrides=overrides)
        out = OmegaConf.to_container(cfg, resolve=False)
    except Exception:  # noqa: BLE001 - a hint only: any failure gives none
        return {}
    finally:
        GlobalHydra.instance().clear()
    return out if isinstance(out, dict) else {}


def _config_name(argv: Sequence[str]) -> str:
    """The primary config the command line chose (``--config-name``/``-cn``), else ours."""
    for i, arg in enumerate(argv):
        if arg in ("--config-name", "-cn") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(("--config-name=", "-cn=")):
            return arg.split("=", 1)[1]
    return "config"


def _key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key path in a nested dict, parents before their children."""
    if isinstance(node, dict):
        for name, value in node.items():
            path = f"{prefix}{name}"
            yield path
            yield from _key_paths(value, f"{path}.")


def closest_key(config: dict[str, Any], key: str) -> str | None:
    """The key the user likely meant by ``key`` (dotted), which ``config`` lacks: its
    first missing part spelled as a sibling of it (``runner.fold`` -> ``runner.folds``), or
    found one level deeper elsewhere (``optimizer.momentum`` -> ``training.optimizer.momentum``);
    None when nothing is close."""
    parts = key.split(".")
    node: Any = config
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        rest = parts[i + 1 :]
        siblings = [str(k) for k in node] if isinstance(node, dict) else []
        close = difflib.get_close_matches(part, siblings, n=1, cutoff=0.75)
        if close:
            return ".".join([*parts[:i], close[0], *rest])
        if i > 0 or not config:
            return None
        elsewhere = [p for p in _key_paths(config) if p.rsplit(".", 1)[-1] == part]
        if elsewhere and not elsewhere[0].startswith("hydra."):
            return ".".join([elsewhere[0], *rest])
        return None
    return None


class HeldStderr:
    """Stands in for ``sys.stderr``: holds what is written until ``release``, then writes
    straight through (logging handlers made meanwhile keep a reference to it)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.held: list[str] | None = []

    def write(self, text: str) -> int:
        text = redact_credentials(text)
        if self.held is None:
            return self.stream.write(text)
        self.held.append(text)
        return len(text)

    def release(self) -> None:
        """Write what was held and stop holding."""
        if self.held is not None:
            held, self.held = self.held, None
            self.stream.write("".join(held))
            self.stream.flush()

    def take(self) -> str:
        """What was held, dropped (holding stops)."""
        held, self.held = "".join(self.held or []), None
        return held

    def flush(self) -> None:
        if self.held is None:
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, ...
        return getattr(self.stream, name)


class MaskedStream:
    """Stands in for ``sys.stdout``: writes through with URI passwords masked (Hydra's
    launcher prints a multirun's overrides there before any job starts)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(redact_credentials(text))

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)


class RedactingFilter(logging.Filter):
    """Masks URI passwords in a log record (its message and traceback) before any handler
    writes it: Hydra's job log file is written beside the console, which MaskedStream
    covers alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format: the handler reports it as logging does
            return True
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if "://" in text:
            redacted = redact_credentials(text)
            if redacted != text or record.exc_info:
                record.msg, record.args = redacted, None
                record.exc_info, record.exc_text = None, None
        return True


def mask_log_handlers() -> None:
    """Put RedactingFilter on every handler of the root logger (the console's and Hydra's
    job log file's)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def job_started() -> None:
    """The job runs: write what stderr held, and let it through from now on (passwords in
    URIs still masked: Hydra prints the overrides of a job that raised)."""
    mask_log_handlers()  # Hydra has set up the job's log file by now
    held = sys.stderr
    if isinstance(held, HeldStderr):
        held.release()


def redact_saved_config(folder: Path) -> None:
    """Mask URI passwords in the config files Hydra saved for the job (``.hydra/*.yaml``): a
    tracking URI given with its password would otherwise sit in every run's output folder."""
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text()
        redacted = redact_credentials(text)
        if redacted != text:
            path.write_text(redacted)


def run_holding_stderr(main: Callable[[], Any]) -> None:
    """Run Hydra's ``main`` with stderr held until the job calls ``job_started``; Hydra's
    failure before that (its exit code 1, or a ValueError it raises about its flags) is
    printed as one ``error:`` line, exit code 2."""
    held = HeldStderr(sys.stderr)
    sys.stderr = held
    masked = sys.stdout = MaskedStream(sys.stdout)
    try:
        main()
    except SystemExit as stop:
        if held.held is None or stop.code in (0, None):
            raise
        message = with_hint(one_line(held.take()), sys.argv[1:])
        sys.stderr = held.stream
        if not message:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as err:  # Hydra refusing its own flags together (-m with --cfg)
        if held.held is None:
            raise
        sys.stderr = held.stream
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if sys.stderr is held:
            sys.stderr = held.stream
        if sys.stdout is masked:
            sys.stdout = masked.stream
        held.release()  # what a handler made meanwhile writes still passes, masked
